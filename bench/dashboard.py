"""The dashboard stays responsive during a large transfer (issue 18, point 6): two linked daemons, a
``--size-mib`` file sent by largage from A to B (accepted on B), and meanwhile the dashboard API's
``GET /api/v1/status`` timed on both daemons every 0.2 s, as the page's live data.

    python bench/dashboard.py --json [--size-mib 1024]
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import parser, report, write_random

from tests.net.daemons import Daemon, link, wait_until


def api(d: Daemon) -> httpx.Client:
    url = json.loads((d.home / "daemon.json").read_text())["gui"]
    return httpx.Client(base_url=url, headers={"X-API-Key": (d.home / "gui-secret").read_text().strip()}, timeout=30)


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--size-mib", type=int, default=1024)
    args = p.parse_args()
    results: dict = {"file_mib": args.size_mib}
    with tempfile.TemporaryDirectory(dir=os.environ.get("ECOSYS_BENCH_TMP")) as tmp:
        base = Path(tmp)
        a, b = Daemon(base, "alpha"), Daemon(base, "beta")
        big = base / "big.bin"
        write_random(big, args.size_mib << 20)
        os.sync()
        b.peers = [f"127.0.0.1:{a.port}"]
        a.start()
        b.start()
        try:
            link(a, b)
            times: dict[str, list[float]] = {"alpha": [], "beta": []}
            done = threading.Event()

            def poll(d: Daemon) -> None:
                with api(d) as client:
                    while not done.is_set():
                        start = time.perf_counter()
                        client.get("/api/v1/status").raise_for_status()
                        times[d.name].append(time.perf_counter() - start)
                        time.sleep(0.2)

            pollers = [threading.Thread(target=poll, args=(d,), daemon=True) for d in (a, b)]
            for t in pollers:
                t.start()
            start = time.perf_counter()
            a.call("send", device=b.id, paths=[str(big)])
            b.answer("OTDL", "yes")
            received = b.home / "largage_aerien" / "big.bin"
            wait_until(lambda: received.exists() and received.stat().st_size == big.stat().st_size
                       and not any(o["state"] == "receiving" for o in b.call("offers")), 900, 0.2, "the transfer")
            results["transfer_s"] = round(time.perf_counter() - start, 1)
            done.set()
            for t in pollers:
                t.join(30)
            for name, samples in times.items():
                results[f"status_ms_median_{name}"] = round(statistics.median(samples) * 1000, 1)
                results[f"status_ms_max_{name}"] = round(max(samples) * 1000, 1)
                results[f"status_samples_{name}"] = len(samples)
        finally:
            a.stop()
            b.stop()
    report(results, args.json)


if __name__ == "__main__":
    main()
