"""One malloc arena for the daemon, and freed heap memory given back while it syncs (glibc only).

glibc gives each thread that allocates its own arena and keeps what was freed in it. The daemon's
worker threads each build received files, read blocks and compress, so every one of them held its own
high-water mark: 8 MiB more peak RSS on each side of the 272 MiB bench (docs/decisions.md, "Stop 26").
The GIL already serializes nearly every allocation, so sharing one arena costs nothing measurable.

Within that arena, a received file's 1 MiB frames and 2 MiB signatures are freed between long-lived
small objects; glibc only gives back the free space at the top of its heap, so the holes stayed
resident (16 MiB of the receiver's 38 MiB heap at its peak in the 272 MiB bench). ``malloc_trim(0)``
returns the free pages of every hole; called after each batch of received changes (a streamed content
is applied in one), at most ten times a second, it took 4-5 MiB off the receiver's peak
(docs/decisions.md, "Stop 27").
"""

from __future__ import annotations

import ctypes
import sys
import time
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:  # pragma: no cover
    import asyncio

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


def _load_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # musl has no malloc_trim
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_malloc_trim = _load_trim()
TRIM_INTERVAL = 0.1  # seconds between two trims: each costs well under a millisecond, faulting pages back more
_last_trim = 0.0


def give_back_free_memory() -> bool:
    """Return the heap's free pages to the system, unless that was done less than TRIM_INTERVAL ago;
    True when it was done now. A no-op (False) where the C library cannot (not glibc)."""
    if _malloc_trim is None or time.monotonic() - _last_trim < TRIM_INTERVAL:
        return False
    _trim_now()
    return True


def _trim_now() -> None:
    global _last_trim
    _last_trim = time.monotonic()  # a race between two threads costs one extra trim, nothing else
    _malloc_trim(0)  # type: ignore[misc]


GIVE_BACK_DELAY = 0.25  # seconds after the first connection ends before the trim that follows it
_pending: set[int] = set()  # id() of the event loops with a trim scheduled


def give_back_soon(loop: asyncio.AbstractEventLoop) -> None:
    """Give the heap's free pages back ``GIVE_BACK_DELAY`` seconds from now on ``loop``, unless that is
    scheduled already. For connections that end: their buffers (256 KiB of frame scratch, TLS buffers)
    are freed once the connection is gone, between objects that stay, and hundreds of connections ended
    by a hostile peer left 150 MiB of free but resident heap behind (given back only by a received
    batch's trim, which never came); one trim shortly after a burst of endings covers them all."""
    if _malloc_trim is None or id(loop) in _pending:
        return
    _pending.add(id(loop))

    def trim() -> None:
        _pending.discard(id(loop))
        _trim_now()

    loop.call_later(GIVE_BACK_DELAY, trim)
