"""Conflict copies listed beside the version at their path, and resolved by keeping one: the choice is
indexed and travels like any edit, so both devices end with it; a path that is not a conflict copy, or
leaves the task, is refused with nothing changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecosys_core.errors import ChangeRefused
from ecosys_core.sync.conflicts import original_path

from .harness import SECURE_ID, make_devices, meet


def conflicted(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("notes.txt", b"base\n")
    a.scan()
    meet(a, b)
    a.write("notes.txt", b"edited on a\n")
    b.write("notes.txt", b"edited on b, longer\n")
    a.scan()
    b.scan()
    meet(a, b)
    meet(a, b)
    return a, b


@pytest.mark.parametrize("keep", ["copy", "current"])
def test_a_conflict_is_listed_and_the_kept_version_reaches_both_devices(tmp_path: Path, keep: str):
    a, b = conflicted(tmp_path)
    try:
        total, page = a.engine.conflicts(SECURE_ID)
        assert total == 1 and len(page) == 1
        conflict = page[0]
        assert original_path(conflict.copy.path) == "notes.txt" and conflict.current is not None
        assert {conflict.copy.size, conflict.current.size} == {len(b"edited on a\n"), len(b"edited on b, longer\n")}
        kept = (a.root / (conflict.copy.path if keep == "copy" else "notes.txt")).read_bytes()
        a.engine.resolve_conflict(SECURE_ID, conflict.copy.path, keep)
        meet(a, b)
        for d in (a, b):
            assert d.files() == {"notes.txt": kept}, d.name
            assert d.engine.conflicts(SECURE_ID)[0] == 0
    finally:
        a.close()
        b.close()


def test_what_is_not_a_conflict_copy_is_refused(tmp_path: Path):
    a, b = conflicted(tmp_path)
    try:
        before = a.files()
        for bad in ("notes.txt", "../notes.sync-conflict-20260101-000000-ABC.txt", "/etc/passwd"):
            with pytest.raises(ChangeRefused):
                a.engine.resolve_conflict(SECURE_ID, bad, "copy")
        copy = a.engine.conflicts(SECURE_ID)[1][0].copy.path
        with pytest.raises(Exception, match="copy.*current"):
            a.engine.resolve_conflict(SECURE_ID, copy, "both")
        assert a.files() == before
    finally:
        a.close()
        b.close()
