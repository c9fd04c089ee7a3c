"""Sync one large file (default 1 GiB) between two devices' engines in one process (real folders,
stores and deltas, no network), then a 100-byte edit of it. Peak RSS covers both sides together.

    python bench/sync_file.py --json [--size-mib 1024]
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from _common import parser, peak_rss_mib, report, timed, write_random

from ecosys_core.settings import HomeLayout
from ecosys_core.store import open_store
from ecosys_core.store.devices import link_task_device, upsert_device
from ecosys_core.store.tasks import add_task
from ecosys_core.sync.engine import SyncEngine
from ecosys_core.sync.objects import ObjectStore
from ecosys_core.types import TaskKind

SECURE_ID = "be" * 16


def device(tmp: Path, name: str, me: str, other: str) -> tuple[SyncEngine, Path]:
    home = HomeLayout(tmp / f"home-{name}").ensure()
    root = tmp / f"root-{name}"
    root.mkdir()
    store = open_store(home.database)
    add_task(store, name="bench", root=root, kind=TaskKind.FOLDER, secure_id=SECURE_ID,
             created_at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    upsert_device(store, other, linked=True)
    link_task_device(store, SECURE_ID, other)
    return SyncEngine(store, ObjectStore(home.objects), me), root


def exchange(a: SyncEngine, b: SyncEngine) -> int:
    """a sends what it has pending for b; returns delta bytes on the wire."""
    wire = 0
    queue = [(a, b, m) for m in a.outgoing(b.device_id)]
    while queue:
        src, dst, message = queue.pop(0)
        if getattr(message, "delta", None) is not None:
            def counted(blocks):
                nonlocal wire
                for block in blocks:
                    wire += len(block)
                    yield block
            message.delta = counted(message.delta)
        queue += [(dst, src, x) for x in dst.receive(src.device_id, message)]
    return wire


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--size-mib", type=int, default=1024)
    args = p.parse_args()
    results: dict = {"file_mib": args.size_mib}
    ida, idb = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    with tempfile.TemporaryDirectory(dir=os.environ.get("ECOSYS_BENCH_TMP")) as tmp:
        t = Path(tmp)
        a, root_a = device(t, "a", ida, idb)
        b, root_b = device(t, "b", idb, ida)
        big = root_a / "big.bin"
        write_random(big, args.size_mib << 20)
        with timed(results, "scan_s"):
            a.scan(SECURE_ID)
        start = time.perf_counter()
        cpu = time.process_time()
        results["initial_wire_bytes"] = exchange(a, b)
        results["initial_sync_s"] = round(time.perf_counter() - start, 3)
        results["initial_sync_cpu_s"] = round(time.process_time() - cpu, 3)
        results["initial_sync_mib_s"] = round(args.size_mib / results["initial_sync_s"], 1)
        assert (root_b / "big.bin").stat().st_size == big.stat().st_size
        with open(big, "r+b") as fh:
            fh.seek((args.size_mib << 20) // 2)
            fh.write(os.urandom(100))
        with timed(results, "edit_scan_s"):
            a.scan(SECURE_ID)
        with timed(results, "edit_sync_s"):
            results["edit_wire_bytes"] = exchange(a, b)
        with open(big, "rb") as x, open(root_b / "big.bin", "rb") as y:
            while True:
                bx, by = x.read(1 << 22), y.read(1 << 22)
                assert bx == by, "copies differ"
                if not bx:
                    break
    results["peak_rss_mib"] = peak_rss_mib()
    report(results, args.json)


if __name__ == "__main__":
    sys.exit(main())
