"""Linking an app installed on two devices follows the seed's timestamp rule: the older task is the
reference, the newer side adopts its secure_id and gets a setup queue, and nobody's data is overwritten."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .daemons import Daemon, link, share, wait_until


def app_task(d: Daemon) -> dict:
    return next(t for t in json.loads(d.cli("task", "list", "--json").stdout) if t["name"] == "Notes (application)")


def test_newer_side_sharing_is_reversed_and_both_keep_their_notes(tmp_path: Path):
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    assert a.cli("magasin", "install", "Notes").returncode == 0  # the sample Magasin, offline
    assert a.cli("app", "run", "Notes", "add", "written on alpha").returncode == 0
    time.sleep(1.1)
    assert b.cli("magasin", "install", "Notes").returncode == 0
    assert b.cli("app", "run", "Notes", "add", "written on beta").returncode == 0
    older, newer = app_task(a), app_task(b)
    assert older["created_at"] < newer["created_at"] and older["secure_id"] != newer["secure_id"]
    b.peers = [f"127.0.0.1:{a.port}"]
    try:
        a.start()
        b.start()
        link(b, a)
        share(b, "Notes (application)", a, None)  # no CHOOSELINKPATH: the app is installed on both sides
        assert app_task(b)["secure_id"] == older["secure_id"] == app_task(a)["secure_id"]

        def notes(d: Daemon) -> set[str]:
            return {p.read_text() for p in (d.home / "apps" / "Notes" / "data").glob("*.txt")}

        wait_until(lambda: notes(a) == notes(b) == {"written on alpha\n", "written on beta\n"}, 30,
                   what="both notes on both devices")
        listed = b.cli("app", "run", "Notes", "list").stdout
        assert "written on alpha" in listed and "written on beta" in listed
    finally:
        a.stop()
        b.stop()
