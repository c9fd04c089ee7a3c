"""Two real daemons on loopback: initial sync of 2,000 small files (1–16 KiB) plus two 128 MiB files,
then the latency of a new 1 KiB file from write on A to complete on B (median of 20), and the ceiling:
what plain asyncio + TLS moves on loopback on this machine, measured in the same run.

    python bench/sync.py --json [--small 2000] [--big-mib 128]
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Awaitable, Callable

from _common import parser, report, settle, write_random

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.net.daemons import Daemon, link, share, tree, wait_until  # noqa: E402


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def sizes(root: Path) -> dict[str, int]:
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if not name.startswith(".ecosys-tmp-"):
                p = Path(folder) / name
                try:
                    out[p.relative_to(root).as_posix()] = p.stat().st_size
                except OSError:
                    pass
    return out


class Arrivals:
    """Polls for the expected files on the receiver, stat-ing only those not seen complete yet: walking
    the whole tree at every poll would take a good part of a core from the daemons being measured."""

    def __init__(self, root: Path, expected: dict[str, int]) -> None:
        self.root, self.expected = root, expected
        self.missing = dict(expected)

    def __call__(self) -> bool:
        for rel, size in list(self.missing.items()):
            try:
                if os.stat(os.path.join(self.root, rel)).st_size == size:
                    del self.missing[rel]
            except OSError:
                pass
        return not self.missing and sizes(self.root) == self.expected


async def tls_ceiling(base: Path, total: int = 1 << 30) -> float:
    """MB/s of 1 MiB writes through plain asyncio streams over TLS 1.3 on loopback (both ends in this
    process, mutually authenticated with two device certificates, as daemons are): what the asyncio
    TLS stack moves with nothing of Ecosys in the way."""
    from ecosys_core.net.identity import load_or_create_identity
    from ecosys_core.net.identity import cert_der
    from ecosys_core.net.transport import _context

    a, b = load_or_create_identity(base / "ca"), load_or_create_identity(base / "cb")
    done = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = 0
        while got < total:
            chunk = await reader.read(1 << 20)
            if not chunk:
                break
            got += len(chunk)
        done.set_result(got)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=_context(a, cert_der(b.cert_path), server=True))
    _, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1],
                                              ssl=_context(b, cert_der(a.cert_path), server=False))
    rate = await _timed_writes(writer.write, writer.drain, os.urandom(1 << 20), total, done)
    writer.close()
    server.close()
    return rate


async def _timed_writes(write: Callable[[bytes], None], drain: Callable[[], Awaitable[None]], block: bytes,
                        total: int, done: asyncio.Future) -> float:
    """MB/s of writing ``block`` until ``total`` bytes are sent and the receiver says ``done``."""
    start = time.perf_counter()
    for _ in range(total >> 20):
        write(block)
        await drain()
    await done
    return total / (time.perf_counter() - start) / 1e6


async def frames_ceiling(base: Path, total: int = 1 << 30) -> float:
    """MB/s of 1 MiB DATA frames through Ecosys's own transport (``net.transport``, with its
    handshake and frame decoding) on loopback, both ends in this process, no engine behind it."""
    from ecosys_core.net.identity import load_or_create_identity
    from ecosys_core.net.protocol import encode_frame
    from ecosys_core.net.transport import accept, connect, listen

    a, b = load_or_create_identity(base / "fa"), load_or_create_identity(base / "fb")
    done = asyncio.get_running_loop().create_future()

    async def serve(incoming) -> None:
        conn = await accept(incoming, a)
        got = 0
        while got < total:
            got += len((await conn.read_frame()).payload)
        done.set_result(got)
        await conn.close()

    server = await listen("127.0.0.1", 0, serve)
    conn = await connect("127.0.0.1", server.sockets[0].getsockname()[1], b, a.device_id)
    frame = encode_frame({"flag": "DATA", "device_id": b.device_id}, os.urandom(1 << 20))
    rate = await _timed_writes(conn.write, conn.drain, frame, total, done)
    await conn.close()
    server.close()
    return rate


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--big-mib", type=int, default=128)
    p.add_argument("--latency-samples", type=int, default=20)
    p.add_argument("--no-settle", action="store_true", help="start at once (see settle() in _common.py)")
    args = p.parse_args()
    results: dict = {}
    if not args.no_settle:
        settle()
    with tempfile.TemporaryDirectory(dir=os.environ.get("ECOSYS_BENCH_TMP")) as tmp:
        base = Path(tmp)
        results["tls_ceiling_mb_s"] = round(asyncio.run(tls_ceiling(base)), 1)
        results["ecosys_transport_mb_s"] = round(asyncio.run(frames_ceiling(base)), 1)
        a, b = Daemon(base, "alpha"), Daemon(base, "beta")
        try:
            for i in range(args.small):
                folder = a.root / f"d{i % 50}"
                folder.mkdir(exist_ok=True)
                (folder / f"f{i}.bin").write_bytes(os.urandom(1024 + (i * 7919) % (15 * 1024)))
            for i in range(2):
                write_random(a.root / f"big{i}.bin", args.big_mib << 20)
            total = sum(sizes(a.root).values())
            results["dataset_mib"] = round(total / 2**20, 1)
            assert a.cli("task", "add", str(a.root), "--name", "bench").returncode == 0
            b.peers = [f"127.0.0.1:{a.port}"]
            a.start()
            b.start()
            link(a, b)
            a.call("rescan", timeout=300)
            expected = sizes(a.root)
            # A shared folder's data is at rest, long written. Without this, the receiver's first syncfs
            # (same disk) also waits for the data set just written here (0.35 s in stop 11's trace).
            os.sync()
            cpu_a, cpu_b = cpu_seconds(a.proc.pid), cpu_seconds(b.proc.pid)
            start = time.perf_counter()
            share(a, "bench", b, b.root)
            wait_until(Arrivals(b.root, expected), 600, 0.02, "initial sync")
            elapsed = time.perf_counter() - start
            results["initial_sync_s"] = round(elapsed, 2)
            results["initial_sync_mb_s"] = round(total / elapsed / 1e6, 1)
            results["cpu_s_sender"] = round(cpu_seconds(a.proc.pid) - cpu_a, 2)
            results["cpu_s_receiver"] = round(cpu_seconds(b.proc.pid) - cpu_b, 2)
            assert tree(b.root) == tree(a.root), "contents differ after the initial sync"
            results["ratio_to_tls_ceiling"] = round(results["initial_sync_mb_s"] / results["tls_ceiling_mb_s"], 2)
            latencies = []
            for i in range(args.latency_samples):
                data = os.urandom(1024)
                target = b.root / f"latency{i}.txt"
                t0 = time.perf_counter()
                (a.root / f"latency{i}.txt").write_bytes(data)
                wait_until(lambda: target.exists() and target.stat().st_size == 1024, 10, 0.002, "latency file")
                latencies.append(time.perf_counter() - t0)
                time.sleep(0.2)
            results["latency_median_ms"] = round(statistics.median(latencies) * 1000, 1)
            results["latency_max_ms"] = round(max(latencies) * 1000, 1)
            results["peak_rss_mib_sender"] = peak_rss_mib(a.proc.pid)
            results["peak_rss_mib_receiver"] = peak_rss_mib(b.proc.pid)
        finally:
            a.stop()
            b.stop()
    report(results, args.json)


if __name__ == "__main__":
    main()
