"""`ecosys status` shows, per task, how many pending events each device is owed; superseded events
for one path collapse into one."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ecosys_core.cli import build_cli

from .harness import SECURE_ID, make_devices, meet


def status(device) -> dict:
    result = CliRunner().invoke(build_cli(), ["status", "--json", "--home", str(device.home.root)])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_status_counts_pending_per_device_and_collapses_superseded_events(tmp_path: Path):
    a, b, c = make_devices(tmp_path, 3)
    for i in range(5):
        a.write("same.txt", f"edit {i}".encode())  # five edits of one path: one pending event
        a.scan()
    a.write("other.txt", b"x")
    a.scan()
    task = status(a)["tasks"][0]
    assert task["files"] == 2
    assert task["pending"] == {b.device_id[:6]: 2, c.device_id[:6]: 2}
    meet(a, b)
    assert status(a)["tasks"][0]["pending"] == {c.device_id[:6]: 2}
    assert status(b)["tasks"][0]["pending"] == {c.device_id[:6]: 2}  # b relays to c
    meet(b, c)
    meet(a, c)
    assert status(a)["tasks"][0]["pending"] == {} and a.engine.pending_counts(SECURE_ID) == {}
