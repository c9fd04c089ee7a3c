"""While an app whose data a task syncs runs on a device, the task waits there: peers' changes are
refused (they stay pending with their senders), local edits are not taken and nothing is sent; once the
app stops, the task goes on and the waiting changes arrive. Real engines, stores, folders and processes."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ecosys_core.errors import ChangeRefused
from ecosys_core.settings import HomeLayout
from ecosys_core.status import task_waiting
from ecosys_core.store import open_store
from ecosys_core.store.devices import link_task_device, upsert_device
from ecosys_core.store.tasks import add_task, get_task
from ecosys_core.sync.engine import SyncEngine
from ecosys_core.sync.objects import ObjectStore
from ecosys_core.types import TaskKind

from .harness import SECURE_ID, Device, meet


def app_devices(tmp_path: Path, process: str = "no-such-process-x") -> list[Device]:
    ids = [hashlib.sha256(f"device-{i}".encode()).hexdigest() for i in range(2)]
    devices = []
    for i, device_id in enumerate(ids):
        home = HomeLayout(tmp_path / f"home{i}").ensure()
        root = tmp_path / f"profile{i}"
        root.mkdir()
        store = open_store(home.database)
        add_task(store, name="Browser", root=root, kind=TaskKind.GRAPIN, source="Browser", secure_id=SECURE_ID,
                 created_at=datetime(2026, 1, 1, tzinfo=timezone.utc), lock_files=("parent.lock", "*/session.lock"),
                 process_names=(process,))
        upsert_device(store, ids[1 - i], name="peer", linked=True)
        link_task_device(store, SECURE_ID, ids[1 - i])
        engine = SyncEngine(store, ObjectStore(home.objects), device_id, staging=home.staging)
        devices.append(Device(f"d{i}", device_id, home, root, store, engine))
    return devices


def settle(device: Device) -> None:
    device.engine.contexts.running.forget()  # verdicts are kept a second; the test does not wait for it


def test_a_running_app_holds_its_task_until_it_stops(tmp_path: Path):
    a, b = app_devices(tmp_path)
    a.write("bookmarks.json", b"v1")
    a.scan()
    meet(a, b)
    b.write("parent.lock", b"")  # the browser starts on b
    settle(b)
    a.write("bookmarks.json", b"v2 from a")
    b.write("prefs.js", b"edited while running")
    a.scan(), b.scan()
    change = a.engine.outgoing(b.device_id)[0]
    with pytest.raises(ChangeRefused, match="Browser is running"):
        b.engine.receive(a.device_id, change)
    assert b.files()["bookmarks.json"] == b"v1", "nothing written under the running app"
    assert not b.engine.outgoing(a.device_id), "nothing of it is sent, nothing was taken"
    assert "Browser is running (parent.lock is there)" in task_waiting(get_task(b.store, SECURE_ID))
    assert b.engine.resumed() == []
    (b.root / "parent.lock").unlink()  # the browser stops
    assert b.engine.resumed() == [(SECURE_ID, {a.device_id})], "a's refused change is asked again"
    b.scan()
    meet(a, b)
    assert a.files() == b.files() == {"bookmarks.json": b"v2 from a", "prefs.js": b"edited while running"}


def test_a_running_process_holds_the_task(tmp_path: Path):
    name = "ecosysfakeapp"
    program = tmp_path / name
    shutil.copy(shutil.which("sleep"), program)
    a, b = app_devices(tmp_path, process=name)
    a.write("save.dat", b"v1")
    a.scan()
    proc = subprocess.Popen([str(program), "30"])
    try:
        time.sleep(0.2)
        settle(b)
        with pytest.raises(ChangeRefused, match=f"process {name}"):
            b.engine.receive(a.device_id, a.engine.outgoing(b.device_id)[0])
    finally:
        proc.kill()
        proc.wait()
    settle(b)
    assert b.engine.resumed() == [(SECURE_ID, {a.device_id})]
    meet(a, b)
    assert b.files() == {"save.dat": b"v1"}


def test_a_lock_file_pattern_inside_a_folder(tmp_path: Path):
    a, b = app_devices(tmp_path)
    b.write("World/session.lock", b"")
    settle(b)
    assert "*/session.lock" in task_waiting(get_task(b.store, SECURE_ID))
