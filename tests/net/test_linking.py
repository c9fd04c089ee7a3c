"""Linking through real daemons: the other side's user decides, unlink is mutual, and `ecosys devices`,
`ecosys link`, `ecosys task share` work from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .daemons import Daemon, in_thread, wait_until


@pytest.fixture
def pair(tmp_path: Path):
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    b.peers = [f"127.0.0.1:{a.port}"]
    a.start()
    b.start()
    wait_until(lambda: a.connected_to(b), 20, what="connection")
    yield a, b
    a.stop()
    b.stop()


def test_refused_link_changes_nothing(pair):
    a, b = pair
    thread, box = in_thread(lambda: a.cli("link", b.id, "--timeout", "20"))
    b.answer("LINK", "no")
    thread.join(40)
    result = box["result"]
    assert result.returncode == 1 and "refused the link" in result.stderr
    assert not any(d["linked"] for d in a.status()["devices"] + b.status()["devices"])


def test_cli_link_devices_share_and_unlink_on_both_sides(pair, tmp_path: Path):
    a, b = pair
    thread, box = in_thread(lambda: a.cli("link", b.id, "--timeout", "20"))
    prompts = wait_until(lambda: json.loads(b.cli("prompts", "--json").stdout), 20, what="LINK prompt")
    assert prompts[0]["flag"] == "LINK" and "alpha" in prompts[0]["context"]
    assert b.cli("answer", "LINK", "yes").returncode == 0
    thread.join(40)
    assert box["result"].returncode == 0 and "Linked with beta" in box["result"].stdout
    devices = json.loads(a.cli("devices", "--json").stdout)
    assert devices[0]["linked"] and devices[0]["connected"] and devices[0]["name"] == "beta"
    (a.root / "x.txt").write_text("x")
    assert a.cli("task", "add", str(a.root), "--name", "docs").returncode == 0  # the running daemon is told
    thread, box = in_thread(lambda: a.cli("task", "share", "docs", "--with", "beta", "--timeout", "20"))
    b.answer("CHOOSELINKPATH", str(b.root))
    thread.join(40)
    assert box["result"].returncode == 0, box["result"].stderr
    wait_until(lambda: (b.root / "x.txt").exists(), 20, what="setup queue")
    status = a.cli("status").stdout
    assert "linked device beta: connected" in status and "docs" in status
    assert a.cli("unlink", "beta").returncode == 0
    wait_until(lambda: not any(d["linked"] for d in b.status()["devices"]) and
               not any(d["device_id"] == a.id and d["linked"] for d in b.status()["devices"]), 20,
               what="beta to forget alpha")
    assert not any(d["device_id"] == b.id for d in a.status()["devices"] if d["linked"])
    (a.root / "after.txt").write_text("not for beta")
    a.call("rescan")
    b.call("rescan")
    import time

    time.sleep(1)
    assert not (b.root / "after.txt").exists()


def test_status_and_errors_without_a_daemon(tmp_path: Path):
    d = Daemon(tmp_path, "solo")
    result = d.cli("link", "ab" * 32)
    assert result.returncode == 1 and "daemon is not running" in result.stderr and "Traceback" not in result.stderr
    assert "daemon not running" in d.cli("status").stdout
    bad = d.cli("link", "not-an-id")
    assert bad.returncode == 1


def test_daemon_stops_cleanly_on_sigterm_and_ctrl_c(tmp_path: Path):
    import signal

    d = Daemon(tmp_path, "solo")
    for sig in (signal.SIGTERM, signal.SIGINT):
        d.start()
        assert (d.home / "daemon.json").exists()
        assert d.stop(sig) == 0
        assert not (d.home / "daemon.json").exists()
    log = d.log.read_text()
    assert log.count("shutting down") == 2 and "Traceback" not in log
