"""Grid digests: a 4-byte digest of every aligned ``GRID``-byte block of a large content, kept by each
device for the contents it holds, so that a small edit of a large file travels as the blocks it
touched rather than as the whole chunks around it.

A chunk signature tells the sender which chunks the receiver has; an edit still sends every chunk it
touched whole (up to 4 KiB each at 128 MiB). Where few chunks differ, the sender also looks for the base's
grid blocks at every byte offset of those chunks (:func:`delta.encode_from_signatures`), so a 100-byte
overwrite sends about one block and a 10-byte insert about one block plus the 10 bytes.

A block's digest is NH, the hash of UMAC (Black et al., CRYPTO 1999), of its little-endian 64-bit
words with fixed keys (splitmix64 of 1, 2, 3...), folded to 64 bits and mixed (MurmurHash3's fmix64),
top 32 bits: one multiply per 16 bytes, so the C loop
(``_cdc.grid``) takes ~5 ms per 128 MiB; :func:`block_digest` is the Python reference it is tested
against, and ``_cdc.windows`` gives the digest of the window at every byte offset of a region. Like chunk
digests, grid digests only say which bytes are worth copying: the rebuilt content is checked against its
BLAKE3 hash, and a false match makes the content travel whole (a chance near 2^-32 per window compared).
They are never sent: each device computes them for its own contents, so nothing on the wire depends on
them, and a device without the C module keeps none (:func:`grid_builder`).
"""

from __future__ import annotations

import os
import struct
from typing import Callable

GRID = 512  # bytes per block: 4 bytes of digests per 512 of content (1 MiB per 128 MiB file)
DIGEST = 4
_M64 = (1 << 64) - 1


def _key(i: int) -> int:
    z = (i + 1) * 0x9E3779B97F4A7C15 & _M64
    z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9 & _M64
    z = (z ^ z >> 27) * 0x94D049BB133111EB & _M64
    return z ^ z >> 31


_KEYS = [_key(i) for i in range(GRID // 8)]


def block_digest(block: bytes | memoryview) -> int:
    """The grid digest of one block of ``GRID`` bytes (the reference the C loops are tested against)."""
    words = struct.unpack(f"<{len(block) // 8}Q", block)
    total = sum((words[i] + _KEYS[i] & _M64) * (words[i + 1] + _KEYS[i + 1] & _M64)
                for i in range(0, len(words), 2))
    return _mix(total & _M64 ^ total >> 64 & _M64) >> 32


def _mix(x: int) -> int:
    """MurmurHash3's fmix64: every bit of the 128-bit sum, folded in ``x``, reaches the top 32 bits."""
    x ^= x >> 33
    x = x * 0xFF51AFD7ED558CCD & _M64
    x ^= x >> 33
    x = x * 0xC4CEB9FE1A85EC53 & _M64
    return x ^ x >> 33


def _package_grid(data: bytes | memoryview) -> bytes:
    view = memoryview(data)
    return b"".join(block_digest(view[at:at + GRID]).to_bytes(DIGEST, "big")
                    for at in range(0, len(view) - GRID + 1, GRID))


def _package_windows(data: bytes | memoryview) -> bytes:
    view = memoryview(data)
    return b"".join(block_digest(view[at:at + GRID]).to_bytes(DIGEST, "big")
                    for at in range(0, len(view) - GRID + 1))


def _native() -> tuple[Callable[[bytes | memoryview], bytes], Callable[[bytes | memoryview], bytes]] | None:
    """The C loops (``_cdc.grid``, ``_cdc.windows``) where they were built; ``ECOSYS_PURE_CDC=1`` forces
    Python."""
    if os.environ.get("ECOSYS_PURE_CDC"):
        return None
    try:
        from ._cdc import grid, windows  # type: ignore[import-not-found]
    except ImportError:
        return None
    return (lambda data: grid(data, GRID)), (lambda data: windows(data, GRID))


_loops = _native()
grid_digests: Callable[[bytes | memoryview], bytes] = _loops[0] if _loops else _package_grid
"""The digests of the whole ``GRID``-byte blocks of ``data`` (from its start), 4 bytes each, end to end."""
window_digests: Callable[[bytes | memoryview], bytes] = _loops[1] if _loops else _package_windows
"""The digest of ``data[k:k + GRID]`` for every ``k``, 4 bytes each, end to end."""


def grid_builder(out: Callable[[bytes], object] | None = None) -> "GridBuilder | None":
    """A :class:`GridBuilder` (writing to ``out`` when given) where the C loop is built, else None: in
    Python a grid costs seconds per 128 MiB (hundreds of times the C loop), more than the scan itself,
    so a device without the C module keeps none and its edits send whole chunks, as before grids. Grids
    are never sent, so nothing else changes."""
    return GridBuilder(out) if _loops is not None else None


class GridBuilder:
    """Grid digests of a content seen once, in order, in pieces of any size (as it is written): given to
    ``out`` as they are made, or else kept for :meth:`result`."""

    def __init__(self, out: Callable[[bytes], object] | None = None) -> None:
        self._carry = b""
        self._digests = bytearray()  # one buffer grown in place: 1 MiB at 128 MiB, never copied whole
        self._out = out if out is not None else self._digests.extend
        self.seen = 0  # bytes fed

    def feed(self, data: bytes | memoryview) -> None:
        self.seen += len(data)
        if self._carry:
            need = GRID - len(self._carry)
            self._carry += bytes(data[:need])
            data = data[need:]
            if len(self._carry) < GRID:
                return
            self._out(grid_digests(self._carry))
            self._carry = b""
        whole = len(data) - len(data) % GRID
        if whole:
            self._out(grid_digests(data[:whole] if whole < len(data) else data))
        if whole < len(data):
            self._carry = bytes(data[whole:])

    def result(self) -> bytearray:
        """The digests of every whole block fed (a last partial block has none); empty with ``out``."""
        return self._digests


def refine(region: bytes, lo: int, base_blocks: dict[int, int]) -> list[tuple[int, int] | tuple[int, int, int]]:
    """How to make ``region`` (new bytes from offset ``lo`` of the new content) from the base: a list of
    ``(at, length)`` literal ranges and ``(at, base_at, length)`` copies, covering it in order, offsets in
    the new content. ``base_blocks``: grid digest → offset of a block of the base. Greedy, as rsync: a
    window whose digest names a base block is copied from it, and the search goes on past it; bytes in no
    such window are literal."""
    digests = window_digests(region)
    found = base_blocks.get
    out: list[tuple[int, int] | tuple[int, int, int]] = []
    k = literal = 0
    windows = len(digests) // DIGEST
    while k < windows:
        base_at = found(int.from_bytes(digests[DIGEST * k:DIGEST * (k + 1)], "big"))
        if base_at is None:
            k += 1
            continue
        if k > literal:
            out.append((lo + literal, k - literal))
        out.append((lo + k, base_at, GRID))
        k += GRID
        literal = k
    if literal < len(region):
        out.append((lo + literal, len(region) - literal))
    return out
