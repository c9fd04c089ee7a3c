"""A live daemon fed malformed, truncated, oversized and path-traversing frames stays up, answers with an
error or closes that connection, and writes nothing outside its task root."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.net.protocol import ProtocolError, encode_frame
from ecosys_core.net.transport import connect
from ecosys_core.prompts import Prompts

from .daemons import Daemon, tree, wait_until

HOSTILE_PATHS = ["../outside.txt", "/etc/evil", "C:/evil.txt", "a/../../evil", "ok/\x00evil", "dir\\evil",
                 "escape/evil.txt", "", ".", "a//b", "../" * 20 + "tmp/evil"]


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    outside = base / "outside"
    outside.mkdir()
    d = Daemon(base, "victim")
    (d.root / "keep.txt").write_text("keep me\n")
    (d.root / "escape").symlink_to(outside)
    assert d.cli("task", "add", str(d.root), "--name", "docs").returncode == 0
    secure_id = json.loads(d.cli("task", "list", "--json").stdout)[0]["secure_id"]
    d.start()
    attacker = load_or_create_identity(base / "attacker-identity")
    linked = load_or_create_identity(base / "linked-attacker-identity")
    # the second attacker gets linked (and shares the task), so its frames reach the engine
    from ecosys_core.store import open_store
    from ecosys_core.store.devices import link_task_device, upsert_device

    store = open_store(d.home / "ecosys.db")
    upsert_device(store, linked.device_id, name="mallory", linked=True)
    link_task_device(store, secure_id, linked.device_id)
    store.close()
    before = tree(d.root)
    yield d, attacker, linked, secure_id, outside, before
    d.stop()


async def _session(d: Daemon, identity, payload: bytes, hello: bool, until=None) -> None:
    """Send ``payload`` (after a HELLO), then wait for any answer, or for a frame ``until(frame)`` is true of."""
    conn = await connect("127.0.0.1", d.port, identity, d.id)
    try:
        if hello:
            conn.write(encode_frame({"flag": "HELLO", "device_id": identity.device_id, "versions": [2]}))
        conn.write(payload)
        await conn.drain()
        try:  # whatever the daemon answers (an ERROR, its HELLO) or its closing the connection
            deadline = time.monotonic() + (10 if until else 0.5)
            while not (until or bool)(await asyncio.wait_for(conn.read_frame(), max(0.01, deadline - time.monotonic()))):
                pass
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, ProtocolError):
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        await conn.close()


def raw_frame(header: dict, payload: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack(">IH", 2 + len(raw) + len(payload), len(raw)) + raw + payload


headers = st.fixed_dictionaries({}, optional={
    "flag": st.sampled_from(["MODIFICATION", "DATA", "NEED_STATE", "MODIFICATION_DONE", "SHARE", "LINK", "BOGUS", ""]),
    "secure_id": st.text(max_size=40), "path": st.sampled_from(HOSTILE_PATHS) | st.text(max_size=30),
    "version": st.dictionaries(st.text(max_size=8), st.integers(-5, 5), max_size=3) | st.integers(),
    "size": st.integers(-10, 1 << 40), "hash": st.text(max_size=64), "more": st.booleans(),
    "deleted": st.booleans() | st.integers(), "end": st.booleans(), "extra": st.integers(),
})
frames = st.one_of(
    st.binary(max_size=300),  # noise
    st.builds(raw_frame, headers, st.binary(max_size=200)),
    st.builds(lambda n, tail: struct.pack(">I", n) + tail, st.integers(0, 2**32 - 1), st.binary(max_size=50)),
    st.builds(lambda h: raw_frame(h)[:-3], headers),  # truncated
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(script=st.lists(frames, min_size=1, max_size=6), who=st.sampled_from(["stranger", "linked"]),
       hello=st.booleans(), secure=st.booleans())
def test_malformed_frames_change_nothing(target, script, who, hello, secure):
    d, attacker, linked, secure_id, outside, before = target
    identity = attacker if who == "stranger" else linked
    payload = b"".join(script)
    if secure:  # the same noise, but with a valid task id so frames get as far as they can
        payload = payload.replace(b'"secure_id": ""', f'"secure_id": "{secure_id}"'.encode())
    asyncio.run(_session(d, identity, payload, hello))
    assert d.status()["device"]["name"] == "victim"
    assert tree(d.root) == before and list(outside.iterdir()) == []


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_well_formed_modification_with_hostile_path_is_refused(target, path):
    d, attacker, linked, secure_id, outside, before = target
    me = linked.device_id
    modification = {"flag": "MODIFICATION", "device_id": me, "secure_id": secure_id, "path": path,
                    "version": {me[:12]: 1}, "hash": "00" * 32, "size": 5, "modified_ns": 1, "modified_by": me[:12],
                    "deleted": False, "base_hash": "", "more": True}
    data = encode_frame({"flag": "DATA", "device_id": me}, b"L\x00\x00\x00\x05evil!") + \
        encode_frame({"flag": "DATA", "device_id": me, "end": True})
    try:
        frame = encode_frame(modification)
    except Exception:
        frame = raw_frame(modification)
    asyncio.run(_session(d, linked, frame + data, True))
    assert d.status()["device"]["name"] == "victim"
    assert tree(d.root) == before and list(outside.iterdir()) == []


def test_unlinked_device_cannot_change_anything(target):
    d, attacker, linked, secure_id, outside, before = target
    me = attacker.device_id
    modification = {"flag": "MODIFICATION", "device_id": me, "secure_id": secure_id, "path": "new.txt",
                    "version": {me[:12]: 1}, "hash": "00" * 32, "size": 5, "modified_ns": 1, "modified_by": me[:12],
                    "deleted": False, "base_hash": "", "more": False}
    asyncio.run(_session(d, attacker, encode_frame(modification), True))
    wait_until(lambda: "refused MODIFICATION from unlinked device" in d.log.read_text(), 10, what="the refusal")
    assert tree(d.root) == before


def test_a_device_claiming_another_id_is_refused(target):
    d, attacker, linked, *_ = target
    # the TLS certificate is the attacker's; the HELLO claims the linked device's id
    frame = encode_frame({"flag": "HELLO", "device_id": linked.device_id, "versions": [2]})
    asyncio.run(_session(d, attacker, frame, False))
    wait_until(lambda: "HELLO from the certificate's device" in d.log.read_text(), 10, what="the refusal")
    with pytest.raises(Exception):
        asyncio.run(connect("127.0.0.1", d.port, attacker, expected_id="ab" * 32))


def test_garbage_before_tls_is_dropped(target):
    d, *_ = target
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as s:
        s.sendall(os.urandom(2000))
        s.settimeout(3)
        try:
            s.recv(100)
        except (socket.timeout, ConnectionError):
            pass
    assert d.status()["device"]["name"] == "victim"


# -- integer ranges and header shapes, checked at the frame boundary ------------------------------

def modification_header(me: str, secure_id: str, **changes) -> dict:
    header = {"flag": "MODIFICATION", "device_id": me, "secure_id": secure_id, "path": "new.txt",
              "version": {me[:12]: 1}, "hash": "00" * 32, "size": 0, "modified_ns": 1, "modified_by": me[:12],
              "deleted": True, "base_hash": ""}
    header.update(changes)
    return header


def raw_header_frame(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">IH", 2 + len(raw), len(raw)) + raw


@pytest.mark.parametrize("changes", [
    {"version": {"a" * 12: 10**4300 - 1}}, {"version": {"a" * 12: 2**53}}, {"modified_ns": 2**63},
    {"size": 2**64}, {"size": -1}, {"version": {f"k{i}": 1 for i in range(2000)}}, {"port": 70000},
])
def test_out_of_range_integers_are_refused_before_anything_is_stored(changes):
    from ecosys_core.net.protocol import decode_frame

    header = modification_header("ab" * 32, "cd" * 16, **changes)
    body = raw_frame(header)[4:]
    with pytest.raises(ProtocolError):
        decode_frame(body)


@pytest.mark.parametrize("text", ['{"flag": "PING", "n": ' + "9" * 5000 + "}", "[" * 30_000 + "]" * 30_000])
def test_huge_numbers_and_deep_nesting_are_protocol_errors(text):
    from ecosys_core.net.protocol import decode_frame

    with pytest.raises(ProtocolError, match="not acceptable JSON"):
        decode_frame(raw_header_frame(text)[4:])


def test_a_linked_device_sending_an_endless_counter_gets_an_error_and_the_daemon_keeps_working(target):
    d, attacker, linked, secure_id, outside, before = target
    me = linked.device_id
    header = json.dumps(modification_header(me, secure_id, path="bomb.txt")).replace(
        '{"' + me[:12] + '": 1}', '{"' + me[:12] + '": ' + "9" * 4300 + "}")

    async def scenario() -> list[str]:
        conn = await connect("127.0.0.1", d.port, linked, d.id)
        flags = []
        try:
            conn.write(encode_frame({"flag": "HELLO", "device_id": me, "versions": [2]}))
            conn.write(raw_header_frame(header))
            await conn.drain()
            while True:
                flags.append((await asyncio.wait_for(conn.read_frame(), 5)).flag)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.TimeoutError):
            return flags
        finally:
            await conn.close()

    flags = asyncio.run(scenario())
    assert flags[-1] == "ERROR", flags  # an ERROR frame, then the connection closes
    assert "Traceback" not in d.log.read_text()
    scan = d.cli("task", "scan", "docs")
    assert scan.returncode == 0 and tree(d.root) == before


def test_questions_waiting_for_the_person_never_stall_syncing(tmp_path):
    """Four LINK requests from a stranger and six offers from a linked device used to hold all four
    engine threads until their prompts expired (~2 min without syncing). Now: at most one question per
    unlinked device and four per linked one wait, the rest are refused at once, and a change between the
    person's own devices still arrives in about a second."""
    from .daemons import shared_pair

    stranger = load_or_create_identity(tmp_path / "stranger-identity")
    with shared_pair(tmp_path, "docs") as (a, b):
        async def pester() -> list[str]:
            answers = []
            for _ in range(4):
                conn = await connect("127.0.0.1", b.port, stranger, b.id)
                conn.write(encode_frame({"flag": "HELLO", "device_id": stranger.device_id, "versions": [2]}))
                conn.write(encode_frame({"flag": "LINK", "device_id": stranger.device_id, "name": "stranger"}))
                await conn.drain()
                try:
                    while (frame := await asyncio.wait_for(conn.read_frame(), 1.0)).flag == "HELLO":
                        pass
                    answers.append(frame.flag + ":" + frame.header.get("error", ""))
                except asyncio.TimeoutError:
                    answers.append("waiting")
                finally:
                    await conn.close()
            return answers

        answers = asyncio.run(pester())
        assert answers[0] == "waiting" and all(x.startswith("LINK_REFUSED:busy") for x in answers[1:]), answers
        offered = tmp_path / "offered.bin"
        offered.write_bytes(b"x" * 100)
        for _ in range(6):
            assert a.cli("send", str(offered), "--to", "beta", "--no-wait").returncode == 0
        prompts = Prompts(b.home / "prompts")
        wait_until(lambda: len([p for p in prompts.pending() if p.flag == "OTDL"]) == 4, 10, what="four offers asked")
        assert len([p for p in prompts.pending() if p.flag == "LINK"]) == 1
        started = time.monotonic()
        (a.root / "while-asked.txt").write_text("still syncing\n")
        wait_until(lambda: (b.root / "while-asked.txt").exists(), 10, 0.02, "a change while questions wait")
        assert time.monotonic() - started < 3.0
        refused = [o for o in a.call("offers") if o["state"] == "declined"]
        assert len(refused) == 2 and all("busy" in o["error"] for o in refused)


def _members_frame(sender: str, secure_id: str, records: list[dict]) -> bytes:
    return encode_frame({"flag": "MEMBERS", "device_id": sender, "secure_id": secure_id, "members": records})


def _record(device: str, by: str, seq: int = 0, removed: bool = False) -> dict:
    return {"device_id": device, "seq": seq, "removed": removed, "by": by, "at": 1}


def _members_of(d: Daemon) -> dict[str, dict]:
    return {m["device_id"]: {k: m[k] for k in ("state", "pending", "added_by")}
            for m in json.loads(d.cli("task", "list", "--json").stdout)[0]["members"]}


def test_forged_member_lists_and_introductions_change_nothing_that_matters(target):
    """Forged membership (issue 15): an unlinked device's list is refused before the engine; a linked
    member's malformed list gets an ERROR; a member adding a device this one is not linked with gets it
    recorded but nothing kept or sent for it; an introduction from a device that is not an introducer
    links nobody."""
    d, attacker, linked, secure_id, outside, before = target
    stranger = "ab" * 32
    before_members = _members_of(d)
    asyncio.run(_session(d, attacker, _members_frame(attacker.device_id, secure_id,
                                                     [_record(attacker.device_id, d.id)]), True))
    wait_until(lambda: "refused MEMBERS from unlinked device" in d.log.read_text(), 10, what="the refusal")
    assert _members_of(d) == before_members
    for bad in ([_record("zz" * 32, linked.device_id)], [{"device_id": stranger}], [_record(stranger, linked.device_id)] * 2):
        asyncio.run(_session(d, linked, _members_frame(linked.device_id, secure_id, bad), True))
    assert _members_of(d) == before_members
    # the daemon's own list, with the stranger in it, comes back once it took this one
    asyncio.run(_session(d, linked, _members_frame(linked.device_id, secure_id, [
        _record(linked.device_id, d.id), _record(d.id, d.id), _record(stranger, linked.device_id)]), True,
        until=lambda frame: frame.flag == "MEMBERS" and stranger in json.dumps(frame.header)))
    wait_until(lambda: stranger in _members_of(d), 10, what="the stranger recorded")
    assert _members_of(d)[stranger]["state"] == "not linked here" and _members_of(d)[stranger]["pending"] == 0
    asyncio.run(_session(d, linked, encode_frame({"flag": "INTRODUCE", "device_id": linked.device_id, "devices": [
        {"device_id": stranger, "name": "intruder", "address": "127.0.0.1:9"}]}), True))
    wait_until(lambda: "not an introducer here" in d.log.read_text(), 10, what="the introduction ignored")
    assert not any(row["device_id"] == stranger and row["linked"] for row in d.call("status")["devices"])
    assert tree(d.root) == before
