"""Largage aérien between two real daemons on loopback: accept, decline, timeout, cancel, a 512 MiB file
with the receiver's memory measured, a folder of 1,000 files, who may offer, and hostile tar streams."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import time
from pathlib import Path

import pytest

from ecosys_core.errors import UnsafePath
from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.net.protocol import encode_frame
from ecosys_core.net.transport import connect
from ecosys_core.store import open_store
from ecosys_core.store.settings_kv import set_setting

from .daemons import Daemon, in_thread, link, wait_until

FINAL = {"done", "declined", "expired", "cancelled", "failed"}


def setting(d: Daemon, key: str, value: str) -> None:
    store = open_store(d.home / "ecosys.db")
    set_setting(store, key, value)
    store.close()


@pytest.fixture
def pair(tmp_path: Path):
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    setting(b, "largage_offer_timeout_s", "3")
    setting(b, "largage_cooldown_s", "60")
    b.peers = [f"127.0.0.1:{a.port}"]
    a.start()
    b.start()
    link(a, b)
    yield a, b
    a.stop()
    b.stop()


def inbox(d: Daemon) -> dict[str, bytes]:
    folder = d.home / "largage_aerien"
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def offer_state(d: Daemon, direction: str = "send") -> dict:
    offers = [o for o in d.call("offers") if o["direction"] == direction]
    return offers[-1] if offers else {}


def send(a: Daemon, b: Daemon, *paths: Path) -> dict:
    return a.call("send", timeout=120, device=b.id, paths=[str(p) for p in paths])


def test_accept_two_files_and_a_name_that_exists(pair, tmp_path: Path):
    a, b = pair
    (tmp_path / "photo.jpg").write_bytes(os.urandom(50_000))
    (tmp_path / "note.txt").write_text("bonjour\n")
    thread, box = in_thread(lambda: a.cli("send", str(tmp_path / "photo.jpg"), str(tmp_path / "note.txt"), "--to", "beta"))
    prompt = wait_until(lambda: json.loads(b.cli("prompts", "--json").stdout), 10, what="OTDL prompt")[0]
    assert prompt["flag"] == "OTDL" and "alpha" in prompt["context"] and "2 file(s)" in prompt["context"]
    assert "photo.jpg" in prompt["context"] and "50008 bytes" in prompt["context"]
    b.answer("OTDL", "yes")
    thread.join(60)
    assert box["result"].returncode == 0, box["result"].stderr
    assert inbox(b) == {"photo.jpg": (tmp_path / "photo.jpg").read_bytes(), "note.txt": b"bonjour\n"}
    received, sent = offer_state(b, "receive"), offer_state(a)
    assert received["done"] == received["total"] == sent["done"] == sent["total"] == 50_008  # file bytes only
    send(a, b, tmp_path / "note.txt")
    b.answer("OTDL", "oui")
    wait_until(lambda: offer_state(a)["state"] == "done", 20, what="second transfer")
    assert set(inbox(b)) == {"photo.jpg", "note.txt", "note (1).txt"}


def test_a_linked_device_declined_writes_nothing_and_may_ask_again_at_once(pair, tmp_path: Path):
    a, b = pair
    (tmp_path / "x.bin").write_bytes(os.urandom(1000))
    send(a, b, tmp_path / "x.bin")
    b.answer("OTDL", "no")
    wait_until(lambda: offer_state(a)["state"] == "declined", 10, what="decline")
    assert offer_state(a)["error"] == "the other device declined"
    assert list((b.home / "largage_aerien").iterdir()) == []
    send(a, b, tmp_path / "x.bin")  # the person's own device: asked again, no cool-down
    b.answer("OTDL", "yes")
    wait_until(lambda: offer_state(a)["state"] == "done", 20, what="the second offer")


def test_an_unlinked_device_declined_is_told_how_long_it_must_wait(tmp_path: Path):
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    setting(b, "largage_cooldown_s", "60")
    b.peers = [f"127.0.0.1:{a.port}"]
    (tmp_path / "x.bin").write_bytes(b"x")
    try:
        a.start()
        b.start()
        wait_until(lambda: a.connected_to(b), 20, what="connection")
        assert b.cli("largage", "allow", "everyone").returncode == 0
        send(a, b, tmp_path / "x.bin")
        b.answer("OTDL", "no")
        wait_until(lambda: offer_state(a)["state"] == "declined", 10, what="decline")
        assert offer_state(a)["error"] == "the other device declined; it refuses offers from this device for 60 s"
        send(a, b, tmp_path / "x.bin")  # during the cool-down: refused without asking
        wait_until(lambda: offer_state(a)["state"] == "declined", 10, what="cool-down refusal")
        assert "declined recently" in offer_state(a)["error"] and " s more" in offer_state(a)["error"]
        assert json.loads(b.cli("prompts", "--json").stdout) == []
        result = a.cli("send", str(tmp_path / "x.bin"), "--to", "beta")
        assert result.returncode == 1 and "\nerror: transfer declined: declined recently; this device" in result.stderr
    finally:
        a.stop()
        b.stop()


def test_unanswered_offer_expires(pair, tmp_path: Path):
    a, b = pair
    (tmp_path / "x.bin").write_bytes(b"x")
    send(a, b, tmp_path / "x.bin")
    wait_until(lambda: offer_state(a)["state"] == "declined", 15, what="expiry")
    assert "nobody answered" in offer_state(a)["error"] and offer_state(b, "receive")["state"] == "expired"
    assert json.loads(b.cli("prompts", "--json").stdout) == [] and inbox(b) == {}


def start_big_transfer(a: Daemon, b: Daemon, tmp_path: Path) -> None:
    """a sends 600 MiB to b, which accepts; returns once a part of it has arrived."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(600):
            fh.write(os.urandom(1 << 20))
    send(a, b, big)
    b.answer("OTDL", "yes")
    wait_until(lambda: offer_state(b, "receive").get("done", 0) > (20 << 20), 60, 0.01, "transfer under way")


def test_cancel_from_the_sender_stops_both_sides(pair, tmp_path: Path):
    a, b = pair
    start_big_transfer(a, b, tmp_path)
    result = a.cli("send", "--cancel")
    assert result.returncode == 0 and "Cancelled 1" in result.stdout
    wait_until(lambda: offer_state(b, "receive")["state"] in ("cancelled", "failed"), 20, what="receiver to stop")
    wait_until(lambda: list((b.home / "largage_aerien").iterdir()) == [], 20, what="partial data removed")
    assert offer_state(a)["state"] == "cancelled"


def test_cancel_from_the_receiver_stops_both_sides(pair, tmp_path: Path):
    a, b = pair
    start_big_transfer(a, b, tmp_path)
    assert "Cancelled 1" in b.cli("send", "--cancel").stdout
    wait_until(lambda: offer_state(a)["state"] in ("cancelled", "failed"), 20, what="sender to stop")
    wait_until(lambda: list((b.home / "largage_aerien").iterdir()) == [], 20, what="partial data removed")


def test_512_mib_file_keeps_receiver_memory_bounded(pair, tmp_path: Path):
    a, b = pair
    big = tmp_path / "huge.bin"
    digest = hashlib.sha256()
    with open(big, "wb") as fh:
        for _ in range(512):
            block = os.urandom(1 << 20)
            digest.update(block)
            fh.write(block)
    send(a, b, big)
    b.answer("OTDL", "yes")
    wait_until(lambda: offer_state(a)["state"] in FINAL, 300, 0.1, "the 512 MiB transfer")
    assert offer_state(a)["state"] == "done"
    received = b.home / "largage_aerien" / "huge.bin"
    got = hashlib.sha256()
    with open(received, "rb") as fh:
        while block := fh.read(1 << 20):
            got.update(block)
    assert got.hexdigest() == digest.hexdigest()
    status = Path(f"/proc/{b.proc.pid}/status").read_text()
    peak = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
    print(f"receiver peak RSS: {peak:.1f} MiB")
    assert peak <= 128


def test_folder_of_1000_files(pair, tmp_path: Path):
    a, b = pair
    folder = tmp_path / "Vacances été"
    for i in range(1000):
        sub = folder / f"jour{i % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"img{i}.txt").write_text(f"image {i}\n" * (i % 7 + 1))
    thread, box = in_thread(lambda: a.cli("send", str(folder), "--to", b.id))
    prompt = wait_until(lambda: json.loads(b.cli("prompts", "--json").stdout), 10, what="MOTDL prompt")[0]
    assert prompt["flag"] == "MOTDL" and "1000 file(s)" in prompt["context"]
    b.answer("MOTDL", "yes")
    thread.join(120)
    assert box["result"].returncode == 0, box["result"].stderr
    got = inbox(b)
    assert len(got) == 1000 and got["Vacances été/jour3/img13.txt"] == (folder / "jour3" / "img13.txt").read_bytes()


def test_unlinked_devices_may_offer_only_when_allowed(tmp_path: Path):
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    b.peers = [f"127.0.0.1:{a.port}"]
    (tmp_path / "x.txt").write_text("hi")
    try:
        a.start()
        b.start()
        wait_until(lambda: a.connected_to(b), 20, what="connection")
        send(a, b, tmp_path / "x.txt")
        wait_until(lambda: offer_state(a)["state"] == "declined", 10, what="refusal")
        assert "only accepts offers from linked devices" in offer_state(a)["error"]
        assert b.cli("largage", "allow", "everyone").returncode == 0
        send(a, b, tmp_path / "x.txt")
        b.answer("OTDL", "yes")
        wait_until(lambda: offer_state(a)["state"] == "done", 20, what="transfer from an unlinked device")
        assert inbox(b) == {"x.txt": b"hi"}
    finally:
        a.stop()
        b.stop()


# -- hostile senders -------------------------------------------------------------------------------

FINE = b"fine"
HOSTILE = {  # what a rogue sender streams after its offer of one file "ok.txt" holding b"fine"
    "not-announced": FINE + b"surprise",
    "wrong-content": b"evil",
    "short": b"fi",
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_stream_aborts_and_leaves_nothing(pair, tmp_path: Path, case: str):
    a, b = pair
    attacker = load_or_create_identity(a.home / "identity")  # a linked device gone rogue
    manifest = [{"name": "ok.txt", "size": 4, "sha256": hashlib.sha256(FINE).hexdigest()}]
    payload = HOSTILE[case]
    outside = tmp_path / "outside"
    outside.mkdir(exist_ok=True)
    me = attacker.device_id

    async def attack() -> str:
        conn = await connect("127.0.0.1", b.port, attacker, b.id)
        frames = [encode_frame({"flag": "HELLO", "device_id": me, "versions": [2], "name": "rogue"}),
                  encode_frame({"flag": "OTDL", "device_id": me, "offer_id": f"evil{case}", "name": "rogue",
                                "total": 4}, json.dumps({"files": manifest}).encode())]
        conn.writelines(frames)
        await conn.drain()
        await asyncio.get_running_loop().run_in_executor(None, lambda: b.answer("OTDL", "yes"))
        deadline = time.monotonic() + 10
        seen = []
        while time.monotonic() < deadline:
            frame = await asyncio.wait_for(conn.read_frame(), 10)
            seen.append(frame.flag)
            if frame.flag == "OFFER_ACCEPTED":
                conn.write(encode_frame({"flag": "DATA", "device_id": me, "offer_id": f"evil{case}"}, payload))
                conn.write(encode_frame({"flag": "DATA", "device_id": me, "offer_id": f"evil{case}", "end": True}))
                await conn.drain()
            if frame.flag in ("CANCEL", "OFFER_DONE"):
                break
        await conn.close()
        return seen[-1]

    a.stop()  # the rogue takes alpha's identity; the real alpha must not be connected meanwhile
    wait_until(lambda: not b.connected_to(a), 20, what="beta to notice alpha left")
    last = asyncio.run(attack())
    assert last == "CANCEL"
    wait_until(lambda: list((b.home / "largage_aerien").iterdir()) == [], 10, what="cleanup")
    assert list(outside.iterdir()) == [] and not (b.home / "escaped.txt").exists()
    assert b.status()["device"]["name"] == "beta"


@pytest.mark.parametrize("names", [["../escaped.txt"], ["/tmp/escaped.txt"], ["C:/x.txt"], ["a/../../x"],
                                   ["same.txt", "same.txt"], ["dir", "dir/inside.txt"], ["x" * 5000]])
def test_a_manifest_with_unsafe_names_is_refused_before_anyone_is_asked(names):
    from ecosys_core.largage.files import parse_manifest

    files = [{"name": n, "size": 1, "sha256": "ab" * 32} for n in names]
    with pytest.raises((ValueError, UnsafePath)):
        parse_manifest(json.dumps({"files": files}).encode())


def test_the_stream_is_files_in_manifest_order_and_nothing_else(tmp_path: Path):
    from ecosys_core.largage.files import extract_offer

    contents = {"top/a.txt": b"alpha", "top/sub/b.bin": bytes(range(256)) * 10, "top/empty": b""}
    manifest = [{"name": n, "size": len(d), "sha256": hashlib.sha256(d).hexdigest()} for n, d in contents.items()]
    partial = tmp_path / "partial"
    partial.mkdir()
    written = []
    extract_offer(io.BytesIO(b"".join(contents.values())), partial, manifest, written.append)
    assert {p.relative_to(partial).as_posix(): p.read_bytes() for p in partial.rglob("*") if p.is_file()} == contents
    assert sum(written) == sum(len(d) for d in contents.values())
