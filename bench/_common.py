"""Helpers shared by the benchmark scripts: peak memory, timing, output."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


@contextmanager
def timed(results: dict, key: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    results[key] = round(time.perf_counter() - start, 3)


def write_random(path: Path, size: int, block: int = 1 << 20) -> None:
    """Write ``size`` random bytes without holding them in memory."""
    with open(path, "wb") as fh:
        left = size
        while left:
            n = min(block, left)
            fh.write(os.urandom(n))
            left -= n


QUIET_S = 360.0  # see settle(): the longest an ext4 without journal skips a deleted inode, and a margin


def settle(seconds: float = 61.0) -> None:
    """Let the files deleted before (by a previous benchmark run, or a test suite) stop slowing file
    creation. This machine's ext4 has no journal; without one, ext4 does not reuse an inode within
    60 s of its deletion, 360 s while the inode's table block is dirty, and every new file skips each
    such inode of its folder's block group, one block lookup each. Right after a run deleted its 4,000
    files, 2,000 creates cost 0.9-2.3 s of kernel time instead of 0.09 s. Flushing makes those blocks
    clean, then a minute lets the inodes age; but the very files the next run creates dirty those blocks
    again, so a whole quiet spell (``QUIET_S``) is what makes creation cheap again (stop 28: 0.09 s for
    2,000 creates after 400 s, 1.0 s after 65 s). Benchmarks that compare two tools keep their runs'
    files until the end (:func:`kept_runs`) and wait the quiet spell once, at the start."""
    os.sync()
    time.sleep(seconds)


@contextmanager
def kept_runs() -> Iterator[Path]:
    """A folder for every run of a benchmark, removed only when all are done: a run that deleted the
    previous one's files would pay for that deletion in each file it creates (see :func:`settle`)."""
    with tempfile.TemporaryDirectory(dir=os.environ.get("ECOSYS_BENCH_TMP")) as tmp:
        yield Path(tmp)


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    return p


def report(results: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(results, sort_keys=True))
    else:
        for key, value in sorted(results.items()):
            print(f"{key:32} {value}")
