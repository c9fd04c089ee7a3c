"""A folder that cannot be read is never taken for a folder whose files were deleted."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ecosys_core.errors import RootUnavailable
from ecosys_core.sync import scanner

from .harness import SECURE_ID, make_devices, meet
from .test_engine_basics import entries


def test_missing_root_records_nothing_and_sends_no_deletion(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("keep/a.txt", b"a")
    a.write("b.txt", b"b")
    a.scan()
    meet(a, b)
    moved = tmp_path / "unmounted"
    shutil.move(a.root, moved)  # the drive holding the task's folder went away
    with pytest.raises(RootUnavailable, match="cannot read the folder"):
        a.scan()
    with pytest.raises(RootUnavailable):
        a.engine.scan(SECURE_ID, ["b.txt"])  # the watcher's path scan too
    assert not any(e.deleted for e in entries(a).values())
    assert a.engine.pending_counts(SECURE_ID) == {}
    shutil.move(moved, a.root)
    a.scan()
    meet(a, b)
    assert b.files() == {"keep/a.txt": b"a", "b.txt": b"b"}


def test_a_root_that_is_a_symbolic_link_is_followed(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    real = tmp_path / "real-folder"
    real.mkdir()
    (real / "x.txt").write_bytes(b"x")
    a.root.rmdir()
    a.root.symlink_to(real, target_is_directory=True)
    a.scan()
    meet(a, b)
    assert b.files() == {"x.txt": b"x"}


def test_unlistable_subfolder_is_not_deleted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    a, b = make_devices(tmp_path, 2)
    a.write("private/secret.txt", b"s")
    a.write("open.txt", b"o")
    a.scan()
    meet(a, b)
    # Tests run as root here, where permissions cannot make a folder unreadable: the listing error is
    # injected (the only mocked part), for that one folder, into the Python walk. The C walk meets a
    # really unreadable folder in test_native_walk.py.
    monkeypatch.setattr(scanner, "_NATIVE_WALK", None)
    real_open, real_scandir = os.open, os.scandir
    blocked = os.fspath(a.root / "private")

    def refuse(path, *args, **kwargs):
        if os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", blocked)
        return real_open(path, *args, **kwargs)

    def refuse_scandir(path=".", *args, **kwargs):
        if not isinstance(path, int) and os.fspath(path) == blocked:
            raise PermissionError(13, "Permission denied", blocked)
        return real_scandir(path, *args, **kwargs)

    monkeypatch.setattr(scanner.os, "open", refuse)
    monkeypatch.setattr(scanner.os, "scandir", refuse_scandir)
    a.write("open.txt", b"o2")
    a.scan()
    monkeypatch.undo()
    assert not entries(a)["private/secret.txt"].deleted
    meet(a, b)
    assert b.files() == {"private/secret.txt": b"s", "open.txt": b"o2"}


def test_a_name_the_index_cannot_hold_is_skipped_not_fatal(tmp_path: Path, caplog):
    """A file whose name is not valid UTF-8 used to make every scan of its task fail."""
    import os

    from ecosys_core.store.index import load_entries, task_row

    from .harness import SECURE_ID, make_devices

    (a,) = make_devices(tmp_path, 1)
    with open(os.path.join(os.fsencode(a.root), b"\xff-latin1.txt"), "wb") as fh:
        fh.write(b"x")
    a.write("fine.txt", b"ok")
    assert a.scan().changed == 1
    assert a.engine.scan(SECURE_ID, [os.fsdecode(b"\xff-latin1.txt"), "fine.txt"]).changed == 0
    with a.store.session() as s:
        assert set(load_entries(s, task_row(s, SECURE_ID).id)) == {"fine.txt"}
    assert "not valid UTF-8 are not synced" in caplog.text
