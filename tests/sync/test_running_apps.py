"""While an app whose data a task syncs runs on a device, the task waits there: peers' changes are
refused (they stay pending with their senders), local edits are not taken and nothing is sent; once the
app stops, the task goes on and the waiting changes arrive. Real engines, stores, folders and processes."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from ecosys_core.errors import ChangeRefused
from ecosys_core.status import task_waiting
from ecosys_core.store.tasks import get_task
from ecosys_core.types import TaskKind

from .harness import SECURE_ID, Device, make_devices, meet


def app_devices(tmp_path: Path, process: str = "no-such-process-x") -> list[Device]:
    return make_devices(tmp_path, 2, task=lambda i, root: {
        "name": "Browser", "kind": TaskKind.GRAPIN, "source": "Browser",
        "lock_files": ("parent.lock", "*/session.lock"), "process_names": (process,)})


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
