"""Full scan of N small files into a real SQLite index, then a rescan of the unchanged tree.

    python bench/scan.py --json [--files 20000] [--cold] [--patterns 50]

With ``--patterns N`` the unchanged tree is then rescanned with N ignore patterns in its
``.ecosysignore`` (a few of them matching one file in ten), alternating with rescans without any, five
of each: ``rescan_patterns_ratio`` is the median with over the median without (target: at most 1.5).

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


def ignore_lines(count: int) -> list[str]:
    """``count`` patterns of the kinds people write; three of them match files of the bench tree (the
    ``f…7.txt`` files, one in ten, and two folders' ``e6`` subfolders)."""
    kinds = ["node_modules/", "*.swp", "*.o", "__pycache__/", ".git/", "build/", "dist/", "*.log", "(?i)*.TMP",
             "!important.log", "**/target/", "*.bak", "~*", ".#*", "/coverage", "(?d)*.thumb", "*7.txt",
             "d00/e6/", "d01/e6/"]
    return (kinds + [f"generated{i}/**/*.out" for i in range(count)])[:count]


def rescans_with_patterns(engine: SyncEngine, secure_id: str, root: Path, count: int) -> dict:
    """Median rescan times without and with ``count`` patterns, alternated."""
    from statistics import median

    from ecosys_core.sync.ignores import IGNORE_FILE, write_patterns

    lines = ignore_lines(count)
    without: list[float] = []
    with_: list[float] = []
    for _ in range(5):
        (root / IGNORE_FILE).unlink(missing_ok=True)
        engine.scan(secure_id)  # the patterns changed: one whole scan takes them in, untimed
        start = time.perf_counter()
        engine.scan(secure_id)
        without.append(time.perf_counter() - start)
        write_patterns(root, lines)
        engine.scan(secure_id)
        start = time.perf_counter()
        report = engine.scan(secure_id)
        with_.append(time.perf_counter() - start)
        assert report.changed == report.deleted == 0
    return {"patterns": count, "rescan_no_patterns_s": round(median(without), 4),
            "rescan_patterns_s": round(median(with_), 4),
            "rescan_patterns_ratio": round(median(with_) / max(median(without), 1e-6), 2)}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--files", type=int, default=20_000)
    p.add_argument("--cold", action="store_true", help="drop the page cache before the first scan")
    p.add_argument("--patterns", type=int, default=0, help="also time rescans with this many ignore patterns")
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
        if args.patterns:
            results.update(rescans_with_patterns(engine, task.secure_id, root, args.patterns))
        store.close()
    results["peak_rss_mib"] = peak_rss_mib()
    report(results, args.json)


if __name__ == "__main__":
    main()
