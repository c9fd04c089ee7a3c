"""Two real daemons sharing a grapin task whose app "runs" on one of them (its lock file is there): the
other's changes wait, shown in ``ecosys status``, and arrive within seconds of the app stopping (the
waiting side asks with RESEND), as do the edits made meanwhile."""

from __future__ import annotations

import json
from pathlib import Path

from .daemons import Daemon, in_thread, link, wait_until


def grapin(d: Daemon) -> None:
    (d.home / "plugins").mkdir(exist_ok=True)
    (d.home / "plugins" / "testapp.json").write_text(json.dumps({
        "FormatVersion": 2, "AppName": "TestApp", "SupportedPlatforms": ["Linux", "Darwin"],
        "Paths": [{"Name": "data", "Locations": {"Any": [str(d.root)]}}], "LockFiles": ["app.lock"]}))


def test_changes_wait_while_the_app_runs_and_arrive_when_it_stops(tmp_path: Path):
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    try:
        for d in (a, b):
            grapin(d)
        (a.root / "notes.txt").write_text("v1")
        assert a.cli("task", "add", "--grapin", "TestApp").returncode == 0
        b.peers = [f"127.0.0.1:{a.port}"]
        a.start()
        b.start()
        link(a, b)
        thread, box = in_thread(lambda: a.call("share", timeout=40, task="TestApp", device=b.id, timeout_s=30))
        b.answer("SHARE", "yes")
        thread.join(45)
        assert "error" not in box, box.get("error")
        wait_until(lambda: (b.root / "notes.txt").exists(), 30, what="the first sync")

        import time
        (b.root / "app.lock").write_text("")  # the app starts on beta
        wait_until(lambda: "TestApp is running" in (b.status()["tasks"][0]["waiting"] or ""), 10, what="waiting")
        time.sleep(1.5)  # the daemon looks at most once a second
        (a.root / "notes.txt").write_text("v2 from alpha")
        (b.root / "draft.txt").write_text("written while the app ran")
        wait_until(lambda: a.status()["tasks"][0]["pending"], 10, what="alpha to owe beta the change")
        time.sleep(2)  # alpha tried: beta refused, nothing moved either way
        assert (b.root / "notes.txt").read_text() == "v1" and not (a.root / "draft.txt").exists()

        (b.root / "app.lock").unlink()  # the app stops
        start = time.monotonic()
        wait_until(lambda: (b.root / "notes.txt").read_text() == "v2 from alpha"
                   and (a.root / "draft.txt").exists(), 15, what="the waiting changes")
        assert time.monotonic() - start < 8
        assert b.status()["tasks"][0]["waiting"] is None
        assert not (a.root / "app.lock").exists(), "a lock file never syncs"
    finally:
        a.stop()
        b.stop()
