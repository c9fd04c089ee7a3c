"""What hostile peers can make a daemon hold: its memory and its sync latency with a legitimate peer
while 1,000 hostile connections are open, and the largest memory one frame can make it take.

    python bench/hostile.py --json [--connections 1000]

Two real daemons (alpha, beta) share a folder; the hostile side opens its connections to beta, each with
a fresh certificate, sends HELLO and stays; meanwhile alpha writes small files and the time until each
is on beta is measured. Then a linked "insider" sends the worst single frames the protocol allows: a
MODIFICATION whose 4 MiB payload is a delta of one zstd literal announcing 4 MiB, and a NEED_STATE whose
4 MiB payload is the largest chunk signature accepted; beta's resident memory is read from /proc before
and after each (VmHWM, the peak, after resetting it where the kernel allows).
"""

from __future__ import annotations

import asyncio
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pyzstd  # noqa: E402

from bench._common import parser, report  # noqa: E402
from ecosys_core.net.identity import load_or_create_identity  # noqa: E402
from ecosys_core.net.protocol import encode_frame  # noqa: E402
from ecosys_core.net.transport import connect  # noqa: E402
from tests.net.daemons import link_insider, shared_pair, wait_until  # noqa: E402


def status_mib(pid: int, key: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def reset_peak(pid: int) -> None:
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux 4.0+)
    except OSError:
        pass


async def hostile_flood(port: int, device: str, identities: list, hold: asyncio.Event) -> int:
    async def one(identity) -> bool:
        try:
            conn = await connect("127.0.0.1", port, identity, device)
        except Exception:
            return False
        try:
            conn.write(encode_frame({"flag": "HELLO", "device_id": identity.device_id, "versions": [2]}))
            await conn.drain()
            await hold.wait()
        except (ConnectionError, OSError):
            pass
        finally:
            await conn.close()
        return True

    results = await asyncio.gather(*(one(i) for i in identities))
    return sum(results)


def latency(a, b, n: int, tag: str) -> list[float]:
    out = []
    for i in range(n):
        started = time.monotonic()
        (a.root / f"probe-{tag}-{i}.txt").write_text(f"probe {i}\n")
        wait_until(lambda i=i: (b.root / f"probe-{tag}-{i}.txt").exists(), 60, 0.005, "a probe")
        out.append(round(time.monotonic() - started, 3))
    return out


async def worst_frames(port: int, device: str, insider, secure_id: str, pid: int) -> dict:
    me = insider.device_id
    raw = 4 << 20
    packed = pyzstd.compress(bytes(raw), 19)
    delta = b"Z" + struct.pack(">II", len(packed), raw) + packed + b"E"
    modification = encode_frame({"flag": "MODIFICATION", "device_id": me, "secure_id": secure_id, "path": "worst.bin",
                                 "version": {me[:12]: 1}, "hash": "00" * 32, "size": raw, "modified_ns": 1,
                                 "modified_by": me[:12], "deleted": False, "base_hash": ""}, delta)
    count = (4 << 20) // 20 - 2
    signature = b"ECS2" + struct.pack(">IIIQI", 512, 1024, 4096, count, count) + b"".join(
        struct.pack(">I", 1) + i.to_bytes(16, "big") for i in range(count))
    need_state = encode_frame({"flag": "NEED_STATE", "device_id": me, "secure_id": secure_id, "path": "small.txt",
                               "have_hash": "11" * 32}, signature[: 4 << 20])
    out = {}
    for name, frame in (("modification_4mib_zstd", modification), ("need_state_4mib_signature", need_state)):
        reset_peak(pid)
        before = status_mib(pid, "VmRSS")
        conn = await connect("127.0.0.1", port, insider, device)
        conn.write(encode_frame({"flag": "HELLO", "device_id": me, "versions": [2]}))
        conn.write(frame)
        await conn.drain()
        try:
            while True:
                await asyncio.wait_for(conn.read_frame(), 3)
        except Exception:
            pass
        await conn.close()
        out[name] = {"rss_before_mib": before, "peak_after_mib": status_mib(pid, "VmHWM")}
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--probes", type=int, default=5)
    args = p.parse_args()
    results: dict = {"connections": args.connections}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        identities = [load_or_create_identity(base / f"h{i}") for i in range(args.connections)]
        insider = load_or_create_identity(base / "insider")
        with shared_pair(base, "docs") as (a, b):
            secure_id = link_insider(b, insider)
            pid = b.proc.pid
            results["idle_rss_mib"] = status_mib(pid, "VmRSS")
            results["idle_latency_s"] = latency(a, b, args.probes, "idle")

            async def flood() -> tuple[int, list[float], float]:
                hold = asyncio.Event()
                task = asyncio.ensure_future(hostile_flood(b.port, b.id, identities, hold))
                await asyncio.sleep(3)
                lat = await asyncio.get_running_loop().run_in_executor(None, latency, a, b, args.probes, "flood")
                rss = status_mib(pid, "VmRSS")
                hold.set()
                return await task, lat, rss

            reset_peak(pid)
            opened, lat, rss = asyncio.run(flood())
            results.update(hostile_connected=opened, flood_rss_mib=rss, flood_peak_mib=status_mib(pid, "VmHWM"),
                           flood_latency_s=lat, flood_latency_median_s=statistics.median(lat))
            results["worst_frames"] = asyncio.run(worst_frames(b.port, b.id, insider, secure_id, pid))
            results["daemon_up"] = b.proc.poll() is None
    report(results, args.json)


if __name__ == "__main__":
    main()
