"""One malloc arena for the daemon (glibc only).

glibc gives each thread that allocates its own arena and keeps what was freed in it. The daemon's
worker threads each build received files, read blocks and compress, so every one of them held its own
high-water mark: 8 MiB more peak RSS on each side of the 272 MiB bench (docs/decisions.md, "Stop 26").
The GIL already serializes nearly every allocation, so sharing one arena costs nothing measurable.
"""

from __future__ import annotations

import ctypes
import sys

_M_ARENA_MAX = -8  # malloc.h


def share_one_arena() -> bool:
    """Ask the C library to give every thread created from now on the main arena; True when it took it
    (glibc), False elsewhere (musl, macOS, Windows), where nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(_M_ARENA_MAX, 1))
