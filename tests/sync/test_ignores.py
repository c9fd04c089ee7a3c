"""Ignore patterns (``.ecosysignore``): what they mean, and that an ignored path is neither sent, nor
deleted, nor overwritten, through real engines, stores and folders; edits take effect without a restart."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ecosys_core.errors import ChangeRefused
from ecosys_core.store.index import get_entry, task_row
from ecosys_core.store.tasks import add_task, get_task
from ecosys_core.sync.ignores import IGNORE_FILE, IgnoreFileError, TaskIgnores, write_patterns
from ecosys_core.sync.watcher import TaskWatcher
from ecosys_core.types import TaskKind

from .harness import SECURE_ID, make_devices, meet


def entry(device, path):
    with device.store.session() as s:
        return get_entry(s, task_row(s, SECURE_ID).id, path)


def ignores(root: Path, text: str, defaults=()) -> TaskIgnores:
    (root / IGNORE_FILE).write_text(text)
    rules = TaskIgnores(root, defaults)
    rules.refresh()
    return rules


def test_patterns_mean_what_gitignore_and_syncthing_say(tmp_path: Path):
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "more.txt").write_text("// from the shared list\n*.bak\n")
    rules = ignores(tmp_path, "# a comment\n// another\n\nnode_modules/\n*.swp\n!keep.swp\n/top.log\n"
                              "(?i)*.jpg\n(?d)*.thumb\n#include shared/more.txt\n")
    assert rules.ignored("node_modules/a/b.js") and rules.ignored("web/node_modules/x")
    assert rules.ignored("notes.swp") and not rules.ignored("keep.swp")
    assert rules.ignored("top.log") and not rules.ignored("sub/top.log")
    assert rules.ignored("IMG.JPG") and rules.ignored("a/b.Jpg")
    assert rules.ignored("old.bak"), "patterns of an included file count"
    assert rules.deletable("a/x.thumb") and not rules.deletable("a/x.swp")
    assert rules.ignored(IGNORE_FILE), "the ignore file itself never syncs"
    assert not rules.ignored("a # comment") and not rules.ignored("docs/readme.md")


@pytest.mark.parametrize("text, where, says", [
    ("ok/\n!\n", "line 2", "bad pattern"),
    ("#include ../outside.txt\n", "line 1", "inside the task"),
    ("#include nowhere.txt\n", "line 1", "no such file"),
    ("#include loop.txt\n", "line 1", "deep"),
    ("#include\n", "line 1", "needs a file name"),
])
def test_a_broken_ignore_file_is_named_with_its_line(tmp_path: Path, text: str, where: str, says: str):
    root = tmp_path / "root"
    root.mkdir()
    (root / "loop.txt").write_text("#include loop.txt\n")
    (tmp_path / "outside.txt").write_text("*\n")
    with pytest.raises(IgnoreFileError) as caught:
        ignores(root, text)
    assert where in str(caught.value) and says in str(caught.value)
    assert IGNORE_FILE in str(caught.value) or "loop.txt" in str(caught.value)


def test_ignored_paths_are_neither_sent_nor_deleted_nor_overwritten(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    write_patterns(a.root, ["node_modules/", "*.swp"])
    a.write("doc.txt", b"shared")
    a.write("node_modules/lib.js", b"a's build")
    a.write("a.swp", b"a's swap")
    b.write("node_modules/lib.js", b"b's build")
    b.write("b.swp", b"b's swap")
    a.scan(), b.scan()
    meet(a, b)
    assert b.files() == {"doc.txt": b"shared", "node_modules/lib.js": b"b's build", "b.swp": b"b's swap"}
    assert a.files() == {"doc.txt": b"shared", "node_modules/lib.js": b"a's build", "a.swp": b"a's swap",
                         IGNORE_FILE: b"node_modules/\n*.swp\n"}
    assert entry(a, "a.swp") is None and entry(a, IGNORE_FILE) is None

    b.delete("node_modules/lib.js")
    b.write("b.swp", b"b's swap, edited")
    b.scan()
    meet(a, b)
    assert a.files()["node_modules/lib.js"] == b"a's build", "a peer's deletion of an ignored path is not applied"
    assert "b.swp" not in a.files()
    assert not a.engine.pending(b.device_id) and not b.engine.pending(a.device_id), "nothing stays owed"


def test_a_path_ignored_after_it_synced_stays_on_the_peers(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("build/out.bin", b"v1")
    a.scan()
    meet(a, b)
    assert b.files() == {"build/out.bin": b"v1"}
    write_patterns(a.root, ["build/"])
    a.delete("build/out.bin")
    a.write("build/out.bin.new", b"other")
    a.engine.scan(SECURE_ID, [IGNORE_FILE])  # what the watcher does when the file changes: a whole scan follows
    meet(a, b)
    assert b.files() == {"build/out.bin": b"v1"}, "an ignored file gone here is not deleted on the peers"


def test_changed_patterns_take_effect_without_a_restart(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    write_patterns(a.root, ["*.log"])
    a.write("run.log", b"log")
    a.write("keep.txt", b"kept")
    a.scan()
    meet(a, b)
    assert b.files() == {"keep.txt": b"kept"}
    write_patterns(a.root, [])
    report = a.engine.scan(SECURE_ID, [IGNORE_FILE])
    assert report.changed == 1, "the patterns moved: the scan that notices it looks at the whole task"
    meet(a, b)
    assert b.files() == {"keep.txt": b"kept", "run.log": b"log"}


def test_the_watcher_picks_up_an_edited_ignore_file(tmp_path: Path):
    (a,) = make_devices(tmp_path, 1)
    a.write("draft.tmp", b"x")
    a.scan()
    assert entry(a, "draft.tmp") is not None
    watcher = TaskWatcher(a.engine, [get_task(a.store, SECURE_ID)], settle=0.05)
    with watcher:
        write_patterns(a.root, ["*.tmp", "*.part"])
        time.sleep(0.3)  # the pattern edit is scanned before the next file appears
        a.write("video.part", b"partial")
        a.write("notes.txt", b"notes")
        deadline = time.monotonic() + 5
        while entry(a, "notes.txt") is None and time.monotonic() < deadline:
            time.sleep(0.02)
    assert entry(a, "notes.txt") is not None
    assert entry(a, "video.part") is None
    assert not entry(a, "draft.tmp").deleted, "an indexed file now ignored is not recorded as deleted"


def test_deletable_ignored_files_do_not_keep_a_deleted_folder(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    write_patterns(a.root, ["(?d)*.thumb", "*.keep"])
    a.write("photos/cat.jpg", b"cat")
    a.write("other/dog.jpg", b"dog")
    a.scan()
    meet(a, b)
    a.write("photos/cat.thumb", b"thumbnail")
    a.write("other/dog.keep", b"mine")
    b.delete("photos/cat.jpg")
    b.delete("other/dog.jpg")
    b.scan()
    meet(a, b)
    assert not (a.root / "photos").exists(), "a (?d) file is deleted so its folder can go"
    assert (a.root / "other" / "dog.keep").read_bytes() == b"mine", "other ignored files keep their folder"


def test_broken_patterns_hold_the_task_until_mended(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    (a.root / IGNORE_FILE).write_text("secret/\n!\n")
    a.write("secret/key", b"private")
    with pytest.raises(IgnoreFileError):
        a.scan()
    b.write("doc.txt", b"from b")
    b.scan()
    message = b.engine.outgoing(a.device_id)[0]
    with pytest.raises(ChangeRefused, match="ignore patterns"):
        a.engine.receive(b.device_id, message)
    assert "doc.txt" not in a.files()
    assert b.engine.pending(a.device_id), "the change stays owed by its sender"
    (a.root / IGNORE_FILE).write_text("secret/\n")
    a.scan()
    meet(a, b)
    assert b.files() == {"doc.txt": b"from b"}


def test_app_data_leaves_out_live_journals_and_locks(tmp_path: Path):
    (a,) = make_devices(tmp_path, 1)
    root = tmp_path / "profile"
    for name in ("places.sqlite", "places.sqlite-wal", "places.sqlite-shm", "cookies.sqlite-journal",
                 "parent.lock", ".parentlock", "Default/Local Storage/leveldb/LOCK", "prefs.js"):
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    task = add_task(a.store, name="Firefox", root=root, kind=TaskKind.GRAPIN, source="Firefox")
    a.engine.scan(task.secure_id)
    with a.store.session() as s:
        rows = {e for e in ("places.sqlite", "prefs.js", "places.sqlite-wal", "parent.lock", ".parentlock",
                            "Default/Local Storage/leveldb/LOCK", "cookies.sqlite-journal", "places.sqlite-shm")
                if get_entry(s, task_row(s, task.secure_id).id, e) is not None}
    assert rows == {"places.sqlite", "prefs.js"}
    write_patterns(root, ["!*-wal"])  # a user who wants them anyway says so
    a.engine.scan(task.secure_id)
    with a.store.session() as s:
        assert get_entry(s, task_row(s, task.secure_id).id, "places.sqlite-wal") is not None


def test_a_synced_file_newly_ignored_is_not_sent_again(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("settings.local", b"v1")
    a.scan()
    meet(a, b)
    write_patterns(a.root, ["*.local"])
    a.scan()  # the file is unchanged, on both sides of the comparison: it must still be matched
    a.write("settings.local", b"v2, this device's own")
    a.scan()
    meet(a, b)
    assert b.files() == {"settings.local": b"v1"}
