"""The daemon's malloc settings (glibc): freed holes in the heap go back to the system after a received
batch, at most every TRIM_INTERVAL. Run in a fresh process, so that the heap's state is this test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ecosys_core import malloc_arenas

pytestmark = pytest.mark.skipif(malloc_arenas._malloc_trim is None, reason="the C library has no malloc_trim (not glibc)")

HOLES = """
import json
from ecosys_core import malloc_arenas

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

kept, freed = [], []
for i in range(400):  # 40 MiB of 100 KiB blocks (below the mmap threshold: they come from the heap) ...
    freed.append(bytearray(b"x" * (100 << 10)))
    kept.append(bytes(600 + i % 7))  # ... each followed by a small block that stays, as in a daemon
del freed
holes = rss_mib()
first, second = malloc_arenas.give_back_free_memory(), malloc_arenas.give_back_free_memory()
print(json.dumps({"holes": holes, "after": rss_mib(), "first": first, "second": second}))
"""


def test_the_heaps_free_holes_go_back_to_the_system_at_most_every_interval():
    done = subprocess.run([sys.executable, "-c", HOLES], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["first"] is True and got["second"] is False  # the second call came within TRIM_INTERVAL
    # glibc gave back the free top of the heap by itself (about half here); the holes below stayed
    assert got["holes"] - got["after"] > 10, got


SOON = """
import asyncio, json
from ecosys_core import malloc_arenas

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

async def main():
    kept, freed = [], []
    for i in range(400):  # as connections leave their buffers between objects that stay
        freed.append(bytearray(b"x" * (100 << 10)))
        kept.append(bytes(600 + i % 7))
    del freed
    loop = asyncio.get_running_loop()
    trims = []
    real = malloc_arenas._malloc_trim
    malloc_arenas._malloc_trim = lambda pad: trims.append(pad) or real(pad)  # counted, then done for real
    holes = rss_mib()
    for _ in range(50):  # fifty connections end at once: one trim, shortly after
        malloc_arenas.give_back_soon(loop)
    before = len(trims)
    await asyncio.sleep(malloc_arenas.GIVE_BACK_DELAY + 0.2)
    print(json.dumps({"holes": holes, "after": rss_mib(), "before": before, "trims": len(trims)}))

asyncio.run(main())
"""


def test_connections_that_end_together_give_their_memory_back_in_one_trim_soon_after():
    done = subprocess.run([sys.executable, "-c", SOON], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert (got["before"], got["trims"]) == (0, 1)  # none at once, one after the delay
    assert got["holes"] - got["after"] > 10, got
