"""Scale (issue 17, point 6): a task of ``--files`` files (1–16 KiB in ``--folders`` folders) between two
daemons, then ``--devices`` daemons sharing one task in a full mesh and a burst of ``--burst`` new files
on one of them (not the one that shared the task) reaching all the others.

    python bench/scale.py --json [--files 100000] [--folders 2000] [--devices 10] [--burst 10000] [--no-settle]

Part 1 measures the initial sync (sharing the full folder until B holds every file), each daemon's peak
RSS, an unchanged rescan on A, and both daemons' RSS after ten idle seconds. Part 2 links every pair,
shares the task from the first daemon with all the others (``task share --all``), writes the burst on
the sixth, and measures the time until every daemon holds all of it, and every daemon's peak RSS.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from _common import parser, report, settle
from sync import Arrivals, peak_rss_mib

from tests.net.daemons import Daemon, link, share, wait_until


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def fill(root: Path, count: int, folders: int, prefix: str = "f") -> dict[str, int]:
    """``count`` random files of 1–16 KiB in ``folders`` folders; path → size."""
    out = {}
    for i in range(count):
        folder = root / f"d{i % folders}"
        folder.mkdir(exist_ok=True)
        size = 1024 + (i * 7919) % (15 * 1024)
        (folder / f"{prefix}{i}.bin").write_bytes(os.urandom(size))
        out[f"d{i % folders}/{prefix}{i}.bin"] = size
    return out


def dashboard_status_ms(d: Daemon, samples: int = 20) -> float:
    """Median time of the dashboard's ``GET /api/v1/status`` (what the page gets each second)."""
    import json
    import statistics

    import httpx

    url = json.loads((d.home / "daemon.json").read_text())["gui"]
    key = (d.home / "gui-secret").read_text().strip()
    times = []
    with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client:
        for _ in range(samples):
            start = time.perf_counter()
            client.get("/api/v1/status").raise_for_status()
            times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 1)


def two_devices(base: Path, files: int, folders: int, results: dict) -> None:
    a, b = Daemon(base, "alpha"), Daemon(base, "beta")
    try:
        expected = fill(a.root, files, folders)
        os.sync()
        assert a.cli("task", "add", str(a.root), "--name", "big").returncode == 0
        b.peers = [f"127.0.0.1:{a.port}"]
        start = time.perf_counter()
        a.start()
        a.call("rescan", timeout=1800)  # the daemon scans as it starts; this waits for that scan
        results["start_and_first_scan_s"] = round(time.perf_counter() - start, 1)
        b.start()
        link(a, b)
        start = time.perf_counter()
        share(a, "big", b, b.root)
        wait_until(Arrivals(b.root, expected), 3600, 0.5, "initial sync")
        results["initial_sync_s"] = round(time.perf_counter() - start, 1)
        results["peak_rss_mib_sender"] = peak_rss_mib(a.proc.pid)  # type: ignore[union-attr]
        results["peak_rss_mib_receiver"] = peak_rss_mib(b.proc.pid)  # type: ignore[union-attr]
        a.call("rescan", timeout=600)
        start = time.perf_counter()
        a.call("rescan", timeout=600)
        results["unchanged_rescan_s"] = round(time.perf_counter() - start, 2)
        results["dashboard_status_ms"] = dashboard_status_ms(a)
        time.sleep(10)
        results["idle_rss_mib_a"] = rss_mib(a.proc.pid)  # type: ignore[union-attr]
        results["idle_rss_mib_b"] = rss_mib(b.proc.pid)  # type: ignore[union-attr]
    finally:
        a.stop()
        b.stop()


def mesh(base: Path, devices: int, burst: int, folders: int, results: dict) -> None:
    daemons: list[Daemon] = []
    try:
        for i in range(devices):
            d = Daemon(base, f"dev{i}")
            d.peers = [f"127.0.0.1:{other.port}" for other in daemons]
            daemons.append(d)
        first = daemons[0]
        (first.root / "seed.txt").write_text("seed\n")
        assert first.cli("task", "add", str(first.root), "--name", "mesh").returncode == 0
        for d in daemons:
            d.start()
        start = time.perf_counter()
        for i, a in enumerate(daemons):
            for b in daemons[i + 1:]:
                link(a, b)
        results["mesh_link_s"] = round(time.perf_counter() - start, 1)
        for d in daemons[1:]:
            share(first, "mesh", d, d.root)
        for d in daemons[1:]:
            wait_until(lambda d=d: (d.root / "seed.txt").exists(), 120, 0.2, "the task on every device")
        source = daemons[min(5, devices - 1)]
        expected = {"seed.txt": 5, **fill(source.root, burst, folders, prefix="burst")}
        start = time.perf_counter()
        for d in daemons:
            wait_until(Arrivals(d.root, expected), 3600, 0.5, f"the burst on {d.name}")
        results["burst_converge_s"] = round(time.perf_counter() - start, 1)
        peaks = [peak_rss_mib(d.proc.pid) for d in daemons]  # type: ignore[union-attr]
        results["mesh_peak_rss_mib_max"] = max(peaks)
        results["mesh_peak_rss_mib_each"] = peaks
    finally:
        for d in daemons:
            d.stop()


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--files", type=int, default=100_000)
    p.add_argument("--folders", type=int, default=2000)
    p.add_argument("--devices", type=int, default=10)
    p.add_argument("--burst", type=int, default=10_000)
    p.add_argument("--no-settle", action="store_true", help="start at once (see settle() in _common.py)")
    args = p.parse_args()
    results: dict = {"files": args.files, "devices": args.devices, "burst": args.burst}
    if not args.no_settle:
        settle()
    with tempfile.TemporaryDirectory(dir=os.environ.get("ECOSYS_BENCH_TMP")) as tmp:
        two_devices(Path(tmp) / "two", args.files, args.folders, results)
    with tempfile.TemporaryDirectory(dir=os.environ.get("ECOSYS_BENCH_TMP")) as tmp:
        mesh(Path(tmp), args.devices, args.burst, max(1, args.folders // 10), results)
    report(results, args.json)


if __name__ == "__main__":
    main()
