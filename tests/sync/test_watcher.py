"""The watchdog bridge: real inotify events become index updates within a second, bursts coalesce, and
the engine's own writes are not reported back as local edits while a user's edit is."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ecosys_core.store.index import get_entry, task_row
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
