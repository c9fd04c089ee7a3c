"""Fuzzing a live daemon with frames written from docs/PROTOCOL.md: malformed, truncated, out of range,
hostile paths, hostile deltas and signatures, from a stranger and from a linked device that shares the
task. The daemon must stay up, stay under a stated memory, write nothing outside its task root, and keep
syncing with its legitimate peer within a second.

CI sends ``ECOSYS_FUZZ_FRAMES`` frames (default 3,000, well under a minute); the soak run sends a
million: ``python -m pytest -m soak tests/net/test_fuzz.py``."""

from __future__ import annotations

import asyncio
import json
import os
import random
import struct
import time
from pathlib import Path

import pytest

from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.net.protocol import ProtocolError, encode_frame
from ecosys_core.net.transport import connect

from .daemons import link_insider, shared_pair, tree, wait_until

RSS_LIMIT_MIB = 400  # the daemon's resident memory must stay under this whatever it is sent
FRAMES_PER_CONNECTION = 25
PATHS = ["../x", "/etc/x", "C:/x", "a/../../x", "ok/\x00x", "a\\b", "escape/x", "", ".", "a//b", "ok.txt",
         "dir/new.txt", "x" * 5000]
FLAGS = ["MODIFICATION", "MODIFICATION_DONE", "NEED_STATE", "DATA", "SHARE", "LINK", "UNLINK", "SETUP_QUEUE",
         "OTDL", "MOTDL", "OFFER_ACCEPTED", "CANCEL", "PING", "ERROR", "HELLO", "ALERT_USER", "BOGUS"]
NUMBERS = [0, 1, -1, 2**31, 2**53, 2**63, 2**64, 10**30]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def delta_bytes(rng: random.Random) -> bytes:
    """A delta stream from the protocol's operations, sizes and contents drawn at random."""
    out = b""
    for _ in range(rng.randint(0, 4)):
        op = rng.choice(b"LZCBEX")
        if op == ord("L"):
            data = rng.randbytes(rng.randint(0, 64))
            out += b"L" + struct.pack(">I", rng.choice([len(data), rng.randint(0, 2**32 - 1)])) + data
        elif op == ord("Z"):
            out += b"Z" + struct.pack(">II", rng.randint(0, 64), rng.choice([10, 2**22, 2**32 - 1])) + rng.randbytes(32)
        elif op == ord("C"):
            out += b"C" + struct.pack(">QI", rng.choice([0, 2**63]), rng.choice([1, 2**32 - 1]))
        elif op == ord("B"):
            out += b"B" + struct.pack(">I", 40) + b"BSDIFF40" + rng.randbytes(32)
        else:
            out += bytes([op])
    return out + rng.choice([b"E", b""])


def random_frame(rng: random.Random, me: str, secure_id: str) -> bytes:
    kind = rng.random()
    if kind < 0.05:
        return rng.randbytes(rng.randint(0, 100))  # noise
    header: dict = {"flag": rng.choice(FLAGS), "device_id": me if rng.random() < 0.9 else "ab" * 32}
    fields = {"secure_id": lambda: rng.choice([secure_id, "", "zz"]), "path": lambda: rng.choice(PATHS),
              "version": lambda: {me[:12]: rng.choice(NUMBERS)} if rng.random() < 0.8 else rng.choice([{}, 5]),
              "hash": lambda: rng.choice(["00" * 32, "", "zz"]), "size": lambda: rng.choice(NUMBERS),
              "modified_ns": lambda: rng.choice(NUMBERS), "modified_by": lambda: me[:12], "deleted": lambda: rng.random() < 0.3,
              "base_hash": lambda: rng.choice(["", "11" * 32]), "more": lambda: rng.random() < 0.3,
              "end": lambda: rng.random() < 0.5, "offer_id": lambda: rng.choice(["o1", "", "x" * 80]),
              "have_hash": lambda: rng.choice(["", "22" * 32]), "name": lambda: "fuzz", "kind": lambda: "grapin",
              "source": lambda: "fish", "created_at": lambda: rng.choice(["2020-01-01T00:00:00+00:00", "never"]),
              "total": lambda: rng.choice(NUMBERS), "versions": lambda: [2], "bogus": lambda: 1}
    for name in rng.sample(sorted(fields), rng.randint(0, 8)):
        header[name] = fields[name]()
    payload = delta_bytes(rng) if rng.random() < 0.5 else rng.randbytes(rng.randint(0, 200))
    if header["flag"] == "NEED_STATE" and rng.random() < 0.5:
        payload = b"ECS2" + struct.pack(">IIIQI", 1, 2**31, 2**32 - 1, 2**40, 1) + rng.randbytes(20)
    if header["flag"] in ("OTDL", "MOTDL"):
        payload = json.dumps({"files": [{"name": rng.choice(PATHS), "size": rng.choice(NUMBERS), "sha256": "ab" * 32}]}).encode()
    try:
        frame = encode_frame(header, payload)
    except (ProtocolError, ValueError, TypeError):
        raw = json.dumps(header).encode()
        frame = struct.pack(">IH", 2 + len(raw) + len(payload), len(raw) & 0xFFFF) + raw + payload
    return frame[: rng.randint(1, len(frame))] if rng.random() < 0.05 else frame


async def fuzz_connection(port: int, identity, expected: str, frames: list[bytes]) -> None:
    try:
        conn = await connect("127.0.0.1", port, identity, expected)
    except Exception:  # refused (too many connections at once, say): that is allowed
        return
    try:
        conn.write(encode_frame({"flag": "HELLO", "device_id": identity.device_id, "versions": [2], "name": "fuzz"}))
        for frame in frames:
            conn.write(frame)
        await conn.drain()
        try:
            while True:
                await asyncio.wait_for(conn.read_frame(), 0.2)
        except Exception:  # an answer, an ERROR, the end of the connection: all fine
            pass
    except (ConnectionError, OSError):
        pass
    finally:
        await conn.close()


def run_fuzz(tmp_path: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    stranger = load_or_create_identity(tmp_path / "stranger")
    insider = load_or_create_identity(tmp_path / "insider")
    with shared_pair(tmp_path, "docs") as (a, b):
        outside = tmp_path / "outside"
        outside.mkdir()
        (b.root / "escape").symlink_to(outside)
        secure_id = link_insider(b, insider)
        before = {p: h for p, h in tree(b.root).items()}
        peak = 0.0
        sent = 0
        while sent < count:
            batch = []
            for _ in range(8):  # eight connections at a time
                identity = insider if rng.random() < 0.7 else stranger
                frames = [random_frame(rng, identity.device_id, secure_id) for _ in range(FRAMES_PER_CONNECTION)]
                batch.append(fuzz_connection(b.port, identity, b.id, frames))
                sent += len(frames)
            asyncio.run(_gather(batch))
            peak = max(peak, rss_mib(b.proc.pid))
            assert b.proc.poll() is None, "the daemon died"
        assert peak < RSS_LIMIT_MIB, f"peak RSS {peak:.0f} MiB"
        assert list(outside.iterdir()) == []
        after = tree(b.root)
        assert {p: h for p, h in after.items() if p in before} == before  # the fuzz names none of these
        wait_until(lambda: a.connected_to(b), 20, what="the legitimate peer still connected")
        started = time.monotonic()
        (a.root / "after-fuzz.txt").write_text("still syncing\n")
        wait_until(lambda: (b.root / "after-fuzz.txt").exists(), 10, 0.02, "a legitimate change")
        assert time.monotonic() - started < 1.0  # measured 0.18 s
        print(f"fuzz: {sent} frames, peak RSS {peak:.0f} MiB, sync after {time.monotonic() - started:.2f} s")


async def _gather(coros: list) -> None:
    await asyncio.gather(*coros)


def test_fuzzed_frames_leave_the_daemon_up_bounded_and_syncing(tmp_path: Path):
    run_fuzz(tmp_path, int(os.environ.get("ECOSYS_FUZZ_FRAMES", "3000")), seed=20261128)


@pytest.mark.soak
@pytest.mark.timeout(0)
def test_a_million_fuzzed_frames(tmp_path: Path):
    run_fuzz(tmp_path, int(os.environ.get("ECOSYS_FUZZ_FRAMES", "1000000")), seed=int(time.time()))
