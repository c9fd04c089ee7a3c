"""Helpers shared by the benchmark scripts: peak memory, timing, output."""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
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


def settle(seconds: float = 61.0) -> None:
    """Let the files deleted just before (by the previous benchmark run, or a test suite) stop slowing
    file creation. This machine's ext4 has no journal; without one, ext4 does not reuse an inode within
    60 s of its deletion (300 s while its inode table block is unwritten), so each new file skips every
    such inode, one block lookup each. Right after a run deleted its 4,000 files, 2,000 creates cost
    0.9 s of kernel time instead of 0.06 s: the second of two runs in a row measured the first one's
    clean-up. Flushing makes those blocks clean, then a minute lets the inodes age."""
    os.sync()
    time.sleep(seconds)


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
