"""The control channel's commands through a real daemon: `task scan` is done by the running daemon
(under its engine's lock), and the status has the same shape whether a daemon answers or not."""

from __future__ import annotations

import json
from pathlib import Path

from .daemons import Daemon, two_daemons, wait_until


def keys(status: dict) -> dict:
    """The status's shape: its keys, and the keys of its rows."""
    return {"top": sorted(k for k in status if k != "daemon"), "device": sorted(status["device"]),
            "devices": sorted({k for d in status["devices"] for k in d}),
            "tasks": sorted({k for t in status["tasks"] for k in t})}


def test_task_scan_is_done_by_the_running_daemon_and_in_process_without_one(tmp_path: Path):
    d = Daemon(tmp_path, "alpha")
    (d.root / "one.txt").write_text("1")
    assert d.cli("task", "add", str(d.root), "--name", "docs").returncode == 0
    d.start()
    try:
        reports = d.call("scan", task="docs")
        assert [r["task"] for r in reports] == ["docs"] and reports[0]["files_seen"] == 1
        result = d.cli("task", "scan", "docs")
        assert result.returncode == 0 and result.stdout.startswith("docs: 1 files"), result.stderr
        unknown = d.cli("task", "scan", "nope")
        assert unknown.returncode == 1 and "no sync task called 'nope'" in unknown.stderr
    finally:
        d.stop()
    (d.root / "two.txt").write_text("2")
    offline = d.cli("task", "scan")
    assert offline.returncode == 0 and "docs: 2 files, 1 changed" in offline.stdout


def test_the_status_has_one_shape_with_and_without_a_daemon(tmp_path: Path):
    a, b = two_daemons(tmp_path)
    try:
        wait_until(lambda: a.connected_to(b), 20, what="a connection")
        live = json.loads(a.cli("status", "--json").stdout)
        assert live["daemon"] and live["device"]["port"] == a.port
    finally:
        a.stop()
        b.stop()
    offline = json.loads(a.cli("status", "--json").stdout)
    assert not offline["daemon"] and offline["device"]["name"] == "alpha"
    assert keys(live) == keys(offline)
    assert offline["tasks"][0]["files"] == 1 and not any(d["connected"] for d in offline["devices"])
