"""The watchdog bridge: real inotify events become index updates within a second, bursts coalesce, and
the engine's own writes are not reported back as local edits while a user's edit is."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from ecosys_core.store.index import IndexBatch, get_entry, task_row
from ecosys_core.store.tasks import get_task
from ecosys_core.sync.watcher import TaskWatcher

from .harness import SECURE_ID, make_devices, meet


def entry(device, path):
    with device.store.session() as s:
        return get_entry(s, task_row(s, SECURE_ID).id, path)


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def watcher_for(device, **kw):
    scans = []
    w = TaskWatcher(device.engine, [get_task(device.store, SECURE_ID)], on_scan=lambda sid, r: scans.append(r), **kw)
    return w, scans


def test_create_edit_rename_delete_are_indexed_within_a_second(tmp_path: Path):
    (a,) = make_devices(tmp_path, 1)
    w, _ = watcher_for(a)
    with w:
        t0 = time.monotonic()
        a.write("new.txt", b"hello")
        assert wait_for(lambda: entry(a, "new.txt") is not None)
        assert time.monotonic() - t0 < 1.0
        a.write("new.txt", b"hello again")
        assert wait_for(lambda: entry(a, "new.txt").size == 11)
        os.replace(a.root / "new.txt", a.root / "renamed.txt")
        assert wait_for(lambda: entry(a, "new.txt").deleted and entry(a, "renamed.txt") is not None)
        (a.root / "renamed.txt").unlink()
        assert wait_for(lambda: entry(a, "renamed.txt").deleted)


def test_a_burst_is_coalesced(tmp_path: Path):
    (a,) = make_devices(tmp_path, 1)
    w, scans = watcher_for(a, settle=0.2)
    with w:
        for i in range(300):
            a.write(f"burst/{i}.txt", str(i).encode())
        assert wait_for(lambda: sum(r.changed for r in scans) == 300, timeout=10)
    assert len(scans) < 30  # a few scans, not one per event


def test_engine_writes_are_not_local_edits_but_user_edits_are(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    w, _ = watcher_for(b)
    with w:
        a.write("doc.txt", b"from a")
        a.scan()
        meet(a, b)
        time.sleep(0.5)  # let every event of the engine's own write be seen
        assert entry(b, "doc.txt").version == entry(a, "doc.txt").version  # no local bump on b
        b.write("doc.txt", b"user edit on b")
        assert wait_for(lambda: entry(b, "doc.txt").version.get(b.engine.me) == 1)
    meet(a, b)
    assert a.files()["doc.txt"] == b"user edit on b"


def test_a_removed_task_is_no_longer_watched(tmp_path: Path):
    (a,) = make_devices(tmp_path, 1)
    w, scans = watcher_for(a)
    with w:
        a.write("one.txt", b"1")
        assert wait_for(lambda: entry(a, "one.txt") is not None)
        w.remove(SECURE_ID)
        a.write("two.txt", b"2")
        time.sleep(0.6)
        assert entry(a, "two.txt") is None


def live(device) -> set[str]:
    with device.store.session() as s:
        return set(IndexBatch(s, task_row(s, SECURE_ID).id).fingerprints())


def test_a_folder_event_rescans_that_folder_not_the_task(tmp_path: Path):
    (a,) = make_devices(tmp_path, 1)
    for i in range(300):
        a.write(f"old/{i}.txt", b"x")
    a.scan()
    outside = tmp_path / "elsewhere"
    for name in ("one", "two"):
        (outside / "sub").mkdir(parents=True, exist_ok=True)
        (outside / "sub" / f"{name}.txt").write_bytes(name.encode())
    w, scans = watcher_for(a)
    with w:
        os.replace(outside, a.root / "new")  # one event for the folder, none made by a write inside it
        assert wait_for(lambda: {"new/sub/one.txt", "new/sub/two.txt"} <= live(a))
        assert max(r.files_seen for r in scans) < 10  # the 300 other files were not walked again
        scans.clear()
        os.replace(a.root / "new", a.root / "renamed")
        assert wait_for(lambda: {"renamed/sub/one.txt", "renamed/sub/two.txt"} <= live(a)
                        and not any(p.startswith("new/") for p in live(a)))
        os.replace(a.root / "renamed", tmp_path / "gone")  # moved out of the task: its files are deleted
        assert wait_for(lambda: not any(p.startswith("renamed/") for p in live(a)))
        assert max(r.files_seen for r in scans) < 10
    assert len([p for p in live(a) if p.startswith("old/")]) == 300


def test_a_folder_scan_sees_what_a_whole_scan_sees(tmp_path: Path):
    """The subtree of one folder, compared alone, gives the index a whole scan would: no link is
    followed (not even the folder itself, or one of its parents), ignored names hold nothing, and the
    rest of the task is not touched."""
    (a,) = make_devices(tmp_path, 1)
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "key.txt").write_bytes(b"not for sync")
    for rel in ("a/b/c.txt", "a/b/d/e.txt", "a/f.txt", "ab.txt", "a b/g.txt", "z.txt"):
        a.write(rel, rel.encode())
    a.scan()
    everything = live(a)
    assert everything == {"a/b/c.txt", "a/b/d/e.txt", "a/f.txt", "ab.txt", "a b/g.txt", "z.txt"}
    (a.root / "a" / "b" / "c.txt").write_bytes(b"changed")
    a.write("a/b/new.txt", b"new")
    (a.root / "z.txt").unlink()  # outside the folder: left for its own event
    report = a.engine.scan(SECURE_ID, [], folders=["a/b"])
    assert report.changed == 2 and report.deleted == 0
    assert live(a) == everything | {"a/b/new.txt"}

    shutil.rmtree(a.root / "a" / "b")
    (a.root / "a" / "b").symlink_to(secret, target_is_directory=True)  # the folder is now a link out
    a.engine.scan(SECURE_ID, [], folders=["a/b", "a/b/d"])
    assert live(a) == {"a/f.txt", "ab.txt", "a b/g.txt", "z.txt"}
    a.engine.scan(SECURE_ID, [], folders=["a/b/d"])  # reached through the link: holds nothing either
    assert not any("key" in p for p in live(a))

    os.rename(a.root / "a b", a.root / ".ecosys")  # an ignored name holds nothing
    a.engine.scan(SECURE_ID, [], folders=[".ecosys", "a b"])
    assert live(a) == {"a/f.txt", "ab.txt", "z.txt"}
    a.scan()
    assert live(a) == {"a/f.txt", "ab.txt"}  # the whole scan agrees, and sees z.txt gone


def test_a_name_starting_with_two_dots_is_inside_the_root(tmp_path: Path):
    (a,) = make_devices(tmp_path, 1)
    w, _ = watcher_for(a)
    with w:
        a.write("..notes.txt", b"kept")
        a.write("..d/x.txt", b"kept too")
        assert wait_for(lambda: {"..notes.txt", "..d/x.txt"} <= live(a))


def test_a_replaced_task_stops_its_watcher_and_the_new_one_is_watched(tmp_path: Path, caplog):
    """An app task adopted from another device keeps its folder under a new secure_id: the old watcher
    must stop (it used to log NotFound on every scan), the new one must see edits."""
    from ecosys_core.linking import adopt_secure_id

    (a,) = make_devices(tmp_path, 1)
    w, scans = watcher_for(a)
    with w:
        old = get_task(a.store, SECURE_ID)
        new = adopt_secure_id(a.store, old.name, "7a" * 16)
        assert w.follow([new]) == [new.secure_id] and set(w.tasks) == {new.secure_id}
        assert w.follow([new]) == []  # nothing new the second time
        (a.root / "after.txt").write_text("seen by the new task")
        assert wait_for(lambda: scans and scans[-1].changed >= 1)
        time.sleep(0.3)
    assert "NotFound" not in caplog.text and "no sync task" not in caplog.text


def test_a_file_closed_after_writing_is_scanned_sooner_than_the_settle_time(tmp_path: Path):
    (a,) = make_devices(tmp_path, 1)
    w, scans = watcher_for(a, settle=2.0, max_delay=5.0)  # long enough that only the close can explain a scan
    with w:
        time.sleep(0.2)
        with open(a.root / "doc.txt", "wb") as fh:
            fh.write(b"written")
            fh.flush()
            time.sleep(0.5)  # open and written, not closed: the settle time holds
            assert entry(a, "doc.txt") is None
        assert wait_for(lambda: entry(a, "doc.txt") is not None, timeout=1.0), "the close did not shorten the wait"
    w.touch(SECURE_ID, "other.txt", closed=True)
    w.touch(SECURE_ID, "other.txt")  # a later event that is no close: the full settle time again
    assert w._due(time.monotonic() + 0.1) == []
