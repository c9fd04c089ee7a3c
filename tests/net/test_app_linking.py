"""Linking an app installed on two devices follows the seed's timestamp rule: the older task is the
reference, the newer side adopts its secure_id and gets a setup queue, and nobody's data is overwritten."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ecosys_core.prompts import Prompts

from .daemons import Daemon, in_thread, link, wait_until


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
        thread, box = in_thread(lambda: b.call("share", timeout=40, task="Notes (application)", device=a.id,
                                               timeout_s=30))
        question = wait_until(lambda: Prompts(a.home / "prompts").find("SHARE"), 20, what="the SHARE question")
        assert "Notes" in question.context and str(a.home / "apps" / "Notes" / "data") in question.context
        a.answer("SHARE", "yes")  # app data is shared only with consent; no CHOOSELINKPATH: installed on both
        thread.join(45)
        assert "error" not in box, box.get("error")
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


def grapin_share(identity, to: Daemon, source: str) -> dict:
    """A linked device's SHARE of a grapin task, sent as its raw frame; the answer's header."""
    import asyncio

    from ecosys_core.net.protocol import encode_frame
    from ecosys_core.net.transport import connect

    async def scenario() -> dict:
        conn = await connect("127.0.0.1", to.port, identity, to.id)
        try:
            conn.write(encode_frame({"flag": "HELLO", "device_id": identity.device_id, "versions": [2], "name": "mallory"}))
            conn.write(encode_frame({"flag": "SHARE", "device_id": identity.device_id, "secure_id": "ee" * 16,
                                     "name": source, "kind": "grapin", "source": source,
                                     "created_at": "2020-01-01T00:00:00+00:00"}))
            await conn.drain()
            while True:
                frame = await asyncio.wait_for(conn.read_frame(), 20)
                if frame.flag.startswith("SHARE_"):
                    return frame.header
        finally:
            await conn.close()

    return asyncio.run(scenario())


def link_by_hand(d: Daemon, identity, name: str) -> None:
    """Mark ``identity`` linked in ``d``'s store (before ``d`` starts), as if the person had said yes."""
    from ecosys_core.store import open_store
    from ecosys_core.store.devices import upsert_device

    store = open_store(d.home / "ecosys.db")
    upsert_device(store, identity.device_id, name=name, linked=True)
    store.close()


def test_a_grapin_share_writes_nothing_without_consent(tmp_path: Path, monkeypatch):
    """A linked device sharing the fish grapin would write ~/.config/fish/config.fish (run at every shell
    start): the person is asked first, naming that folder, and a no writes nothing."""
    from ecosys_core.net.identity import load_or_create_identity

    home = tmp_path / "user"
    (home / ".config").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))  # the daemon resolves the grapin's folder against it
    victim = Daemon(tmp_path, "victim")
    mallory = load_or_create_identity(tmp_path / "mallory-identity")
    link_by_hand(victim, mallory, "mallory")
    victim.start()
    try:
        seen = {}

        def decline() -> bool:
            prompts = Prompts(victim.home / "prompts")
            seen["context"] = prompts.find("SHARE").context
            prompts.give("SHARE", "no")
            return True

        thread, box = in_thread(lambda: grapin_share(mallory, victim, "fish"))
        wait_until(decline, 20, what="the SHARE question")
        thread.join(30)
        assert box["result"]["flag"] == "SHARE_REFUSED" and "declined" in box["result"]["error"]
        assert str(home / ".config" / "fish") in seen["context"]
        assert not (home / ".config" / "fish").exists()
        assert json.loads(victim.cli("task", "list", "--json").stdout) == []
    finally:
        victim.stop()
