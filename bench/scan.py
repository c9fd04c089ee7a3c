"""Full scan of N small files into a real SQLite index, then a rescan of the unchanged tree.

    python bench/scan.py --json [--files 20000] [--cold]

With ``--cold`` the page cache is dropped before the first scan (Linux, as root), as after a reboot:
the first scan then reads the files from disk. Without it both scans run on a warm cache.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from pathlib import Path

from _common import parser, peak_rss_mib, report, timed

from ecosys_core.settings import HomeLayout
from ecosys_core.store import open_store
from ecosys_core.store.tasks import add_task
from ecosys_core.sync.engine import SyncEngine
from ecosys_core.sync.objects import ObjectStore
from ecosys_core.types import TaskKind


def drop_page_cache() -> bool:
    """Write back and drop the page cache; False where this process may not (not Linux, not root)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError:
        return False
    return True


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--files", type=int, default=20_000)
    p.add_argument("--cold", action="store_true", help="drop the page cache before the first scan")
    args = p.parse_args()
    results: dict = {"files": args.files, "cold": False}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "tree"
        old = time.time() - 3600  # files written an hour ago, as a real tree would be
        for i in range(args.files):
            folder = root / f"d{i % 100:02d}" / f"e{i % 7}"
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"f{i}.txt"
            path.write_bytes(os.urandom(1024 + (i * 37) % 3072))
            os.utime(path, (old, old))
        home = HomeLayout(Path(tmp) / "home").ensure()
        store = open_store(home.database)
        task = add_task(store, name="bench", root=root, kind=TaskKind.FOLDER)
        engine = SyncEngine(store, ObjectStore(home.objects, budget=1 << 30), hashlib.sha256(b"bench").hexdigest())
        if args.cold:
            results["cold"] = drop_page_cache()
        with timed(results, "first_scan_s"):
            first = engine.scan(task.secure_id)
        with timed(results, "rescan_s"):
            again = engine.scan(task.secure_id)
        assert first.changed == args.files and again.changed == 0
        results["rescan_speedup"] = round(results["first_scan_s"] / max(results["rescan_s"], 1e-6), 1)
        results["first_scan_files_per_s"] = round(args.files / results["first_scan_s"])
        store.close()
    results["peak_rss_mib"] = peak_rss_mib()
    report(results, args.json)


if __name__ == "__main__":
    main()
