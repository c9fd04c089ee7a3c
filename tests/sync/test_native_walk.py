"""The C walk (ecosys_core/sync/_walk.c) gives exactly the Python walk's answer, which is the reference:
same files with the same (size, mtime_ns), same temporary files, same unreadable folders, no link
followed below the root, names that are not UTF-8 kept."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

import pytest

from ecosys_core.errors import RootUnavailable
from ecosys_core.sync import scanner
from ecosys_core.sync.fsio import TEMP_PREFIX

from .native_build import build_native


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return build_native("_walk", tmp_path_factory.mktemp("native"))


def walk(root: Path, native: ModuleType | None, monkeypatch: pytest.MonkeyPatch, racy_after: int | None = None
         ) -> tuple:
    monkeypatch.setattr(scanner, "_NATIVE_WALK", native.walk if native else None)
    found = scanner.walk_tree(root, racy_after)
    return found.files, sorted(found.temp_files), sorted(found.unreadable), sorted(found.racy)


def make_tree(root: Path, outside: Path) -> None:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "empty").mkdir()
    (root / "a.txt").write_bytes(b"a" * 10)
    (root / "sub" / "b.bin").write_bytes(os.urandom(5000))
    (root / "sub" / "deeper" / "c").write_bytes(b"")
    (root / "é ü").mkdir()
    (root / "é ü" / "名前.txt").write_bytes(b"n")
    os.close(os.open(os.fsencode(root) + b"/not-utf8-\xff\xfe.bin", os.O_CREAT | os.O_WRONLY, 0o644))
    (root / ".DS_Store").write_bytes(b"x")
    (root / ".ecosys").mkdir()
    (root / ".ecosys" / "state").write_bytes(b"x")
    (root / "sub" / f"{TEMP_PREFIX}abc").write_bytes(b"partial")
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"s")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    os.mkfifo(root / "pipe")


def test_native_and_python_walks_agree(tmp_path: Path, native: ModuleType, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "root"
    root.mkdir()
    make_tree(root, tmp_path / "outside")
    old = time.time_ns() - 3600 * 10**9
    os.utime(root / "a.txt", ns=(old, old))
    expected = walk(root, None, monkeypatch, time.time_ns() - 60 * 10**9)
    assert walk(root, native, monkeypatch, time.time_ns() - 60 * 10**9) == expected
    found, temps, hidden, racy = expected
    assert "a.txt" not in racy and "sub/b.bin" in racy  # modified within the last minute
    assert sorted(found) == sorted(["a.txt", "sub/b.bin", "sub/deeper/c", "é ü/名前.txt",
                                    os.fsdecode(b"not-utf8-\xff\xfe.bin")])
    assert found["sub/b.bin"][0] == 5000
    assert found["a.txt"][1] == (root / "a.txt").stat().st_mtime_ns
    assert temps == [root / "sub" / f"{TEMP_PREFIX}abc"] and hidden == []


def test_a_root_that_is_a_link_is_followed_and_a_missing_one_refused(
        tmp_path: Path, native: ModuleType, monkeypatch: pytest.MonkeyPatch):
    real = tmp_path / "real"
    real.mkdir()
    (real / "x").write_bytes(b"x")
    (tmp_path / "root").symlink_to(real, target_is_directory=True)
    assert list(walk(tmp_path / "root", native, monkeypatch)[0]) == ["x"]
    for impl in (native, None):
        with pytest.raises(RootUnavailable, match="cannot read the folder"):
            walk(tmp_path / "gone", impl, monkeypatch)
        with pytest.raises(RootUnavailable):
            walk(real / "x", impl, monkeypatch)  # a file is not a folder


def test_an_unreadable_folder_is_reported_not_listed(native: ModuleType):
    """A folder the walking user may not list: as root (CI) the walk runs in a child that becomes
    'nobody', because root reads any folder; nothing is mocked."""
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    base = Path(tempfile.mkdtemp(prefix="ecosys-walk-", dir="/tmp"))  # pytest's folders are root-only
    try:
        base.chmod(0o755)
        (base / "module").mkdir(mode=0o755)
        module = Path(shutil.copy(native.__file__, base / "module"))
        module.chmod(0o755)
        tree = base / "tree"
        tree.mkdir(mode=0o755)
        (tree / "open").mkdir(mode=0o755)
        (tree / "open" / "f.txt").write_bytes(b"f")
        (tree / "open" / "f.txt").chmod(0o644)
        (tree / "private").mkdir(mode=0o755)
        (tree / "private" / "s.txt").write_bytes(b"s")
        (tree / "private").chmod(0o000)
        code = ("import json, os, sys\n"
                "if os.geteuid() == 0:\n"
                "    try:\n        os.setgid(65534); os.setuid(65534)\n"
                "    except PermissionError:\n        print('cannot drop root'); sys.exit(0)\n"
                f"sys.path.insert(0, {str(module.parent)!r})\n"
                "import _walk\n"
                f"found, temps, hidden, racy = _walk.walk({str(tree)!r}, (), {TEMP_PREFIX!r}, 0)\n"
                "print(json.dumps([sorted(found), temps, hidden]))\n")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        if done.stdout.strip() == "cannot drop root":
            pytest.skip("running as root without the right to become another user: no folder is unreadable")
        assert json.loads(done.stdout) == [["open/f.txt"], [], ["private/"]]
    finally:
        if (base / "tree" / "private").exists():
            (base / "tree" / "private").chmod(0o755)
        shutil.rmtree(base)


def test_the_built_walk_is_the_one_in_use():
    built = list(Path(scanner.__file__).parent.glob("_walk*.so"))
    if not built:
        pytest.skip("no C walk was built next to the scanner (no compiler at install): the Python walk is used")
    assert scanner._NATIVE_WALK is not None


def test_wide_and_deep_trees_agree(tmp_path: Path, native: ModuleType, monkeypatch: pytest.MonkeyPatch):
    """Several threads share the C walk's folder stack: nothing may be missed or listed twice."""
    root = tmp_path / "root"
    deep = root.joinpath(*[f"level{i}" for i in range(60)])
    deep.mkdir(parents=True)
    (deep / "bottom.txt").write_bytes(b"b")
    for i in range(300):
        folder = root / f"w{i % 30}" / f"x{i}"
        folder.mkdir(parents=True)
        for j in range(i % 4):
            (folder / f"f{j}").write_bytes(b"x" * j)
    expected = walk(root, None, monkeypatch)
    for _ in range(5):
        assert walk(root, native, monkeypatch) == expected
    assert len(expected[0]) == 1 + sum(i % 4 for i in range(300))
