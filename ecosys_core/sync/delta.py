"""Deltas: how new content travels as a stream of operations against content the receiver has.

Stream format (all integers big-endian), ended by ``E``:

- ``L`` u32 n, n bytes ........ literal bytes
- ``Z`` u32 n, u32 raw, n bytes  zstd-compressed literal (``raw`` bytes once decompressed)
- ``C`` u64 offset, u32 n ..... copy n bytes of the base from offset
- ``B`` u32 n, n bytes ........ a bsdiff4 patch of the whole base (small files only)
- ``E`` ....................... end

Three encoders: the whole content (no base), bsdiff4 against the old bytes (files up to
``BSDIFF_MAX``, where bsdiff is cheap: docs/decisions.md), and content-defined chunks against the
base's :class:`Signature` (any size, bounded memory). The decoder streams, checks every bound, and
never trusts a length it was given.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import blake3
import bsdiff4
import pyzstd

from ..errors import IntegrityError
from .chunking import READ_BLOCK, Signature, chunk_digest, iter_chunks

BSDIFF_MAX = 1 << 20
MAX_LITERAL = 4 << 20
_ZSTD_LEVEL = 3


class DeltaError(IntegrityError):
    """A delta is malformed or does not fit its base; nothing was written."""


def _literal(data: bytes, compress: bool = True) -> bytes:
    if compress:
        packed = pyzstd.compress(data, _ZSTD_LEVEL)
        if len(packed) < len(data) * 0.9:
            return b"Z" + struct.pack(">II", len(packed), len(data)) + packed
    return b"L" + struct.pack(">I", len(data)) + data


def encode_full(stream: BinaryIO) -> Iterator[bytes]:
    """The whole content of ``stream`` as literals, compressed while compressing pays (media and
    archives stop being tried after two blocks that would not shrink)."""
    misses = 0
    while block := stream.read(READ_BLOCK):
        literal = _literal(block, compress=misses < 2)
        misses = misses + 1 if literal[:1] == b"L" else 0
        yield literal
    yield b"E"


def encode_bsdiff(old: bytes, new: bytes) -> Iterator[bytes]:
    """A bsdiff4 patch from ``old`` to ``new`` (both small: memory is ~16x their size)."""
    patch = bsdiff4.diff(old, new)
    yield b"B" + struct.pack(">I", len(patch)) + patch
    yield b"E"


def encode_against(stream: BinaryIO, base: Signature) -> Iterator[bytes]:
    """``stream``'s content as copies of the base's chunks plus literals for what the base lacks."""
    known = base.index()
    literal = bytearray()
    copy_off = copy_len = 0
    for chunk in iter_chunks(stream, base.params):
        hit = known.get(chunk_digest(chunk))
        if hit is not None and hit[1] == len(chunk):
            if literal:
                yield _literal(bytes(literal))
                literal.clear()
            if copy_len and copy_off + copy_len == hit[0]:
                copy_len += hit[1]
            else:
                if copy_len:
                    yield b"C" + struct.pack(">QI", copy_off, copy_len)
                copy_off, copy_len = hit
            continue
        if copy_len:
            yield b"C" + struct.pack(">QI", copy_off, copy_len)
            copy_len = 0
        literal += chunk
        if len(literal) >= READ_BLOCK:
            yield _literal(bytes(literal))
            literal.clear()
    if copy_len:
        yield b"C" + struct.pack(">QI", copy_off, copy_len)
    if literal:
        yield _literal(bytes(literal))
    yield b"E"


class _Reader:
    """Exact reads over an iterator of byte blocks. A read that lies within one block is a view of it, not
    a copy: a literal usually arrives whole in one DATA frame, and a large file is otherwise copied three
    more times on its way to the disk. Only a read that straddles blocks joins them."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._it = iter(blocks)
        self._block = memoryview(b"")
        self._pos = 0

    def read(self, n: int) -> bytes | memoryview:
        block, pos = self._block, self._pos
        if pos + n <= len(block):
            self._pos = pos + n
            return block[pos:pos + n]
        parts = [block[pos:]]
        got = len(block) - pos
        while got < n:
            try:
                block = memoryview(next(self._it))
            except StopIteration:
                raise DeltaError("delta ends too early") from None
            take = min(n - got, len(block))
            parts.append(block[:take])
            got += take
            self._block, self._pos = block, take
        return b"".join(parts)

    def drain(self) -> bool:
        """True when nothing follows."""
        if self._pos < len(self._block):
            return False
        return all(not block for block in self._it)


def _bsdiff_new_size(patch: bytes) -> int:
    if len(patch) < 32 or patch[:8] != b"BSDIFF40":
        raise DeltaError("not a bsdiff4 patch")
    raw = patch[24:32]
    size = int.from_bytes(raw[:7] + bytes([raw[7] & 0x7F]), "little")
    return -size if raw[7] & 0x80 else size


def apply_delta(blocks: Iterable[bytes], base: Path | None, out: BinaryIO, *, expected_size: int,
                observe: Callable[[bytes | memoryview], None] | None = None) -> str:
    """Write the content described by ``blocks`` (against file ``base``) into ``out``; return its BLAKE3.

    Raises DeltaError when the delta is malformed, reaches outside the base, or grows past
    ``expected_size``. The caller verifies the returned hash before anything is moved into place.
    ``observe`` sees every byte written (to build a chunk signature in the same pass).
    """
    reader = _Reader(blocks)
    hasher = blake3.blake3()
    written = 0
    base_fh = open(base, "rb") if base is not None else None
    base_size = os.fstat(base_fh.fileno()).st_size if base_fh else 0

    def emit(data: bytes | memoryview) -> None:
        nonlocal written
        written += len(data)
        if written > expected_size:
            raise DeltaError("delta produces more bytes than announced")
        hasher.update(data)
        out.write(data)
        if observe is not None:
            observe(data)

    try:
        while True:
            op = bytes(reader.read(1))
            if op == b"E":
                break
            if op == b"L":
                (n,) = struct.unpack(">I", reader.read(4))
                if n > MAX_LITERAL:
                    raise DeltaError("literal too large")
                emit(reader.read(n))
            elif op == b"Z":
                n, raw = struct.unpack(">II", reader.read(8))
                if n > MAX_LITERAL or raw > MAX_LITERAL:
                    raise DeltaError("literal too large")
                try:
                    data = pyzstd.decompress(reader.read(n))
                except pyzstd.ZstdError as exc:
                    raise DeltaError(f"bad compressed literal: {exc}") from None
                if len(data) != raw:
                    raise DeltaError("compressed literal has the wrong size")
                emit(data)
            elif op == b"C":
                offset, n = struct.unpack(">QI", reader.read(12))
                if base_fh is None or offset + n > base_size:
                    raise DeltaError("copy outside the base")
                base_fh.seek(offset)
                while n:
                    piece = base_fh.read(min(n, READ_BLOCK))
                    if not piece:
                        raise DeltaError("base changed while reading it")
                    emit(piece)
                    n -= len(piece)
            elif op == b"B":
                (n,) = struct.unpack(">I", reader.read(4))
                if base_fh is None or base_size > BSDIFF_MAX * 4 or n > MAX_LITERAL * 4:
                    raise DeltaError("bsdiff patch without a small base")
                patch = bytes(reader.read(n))
                new_size = _bsdiff_new_size(patch)
                if new_size < 0 or new_size > expected_size:
                    raise DeltaError("bsdiff patch announces the wrong size")
                base_fh.seek(0)
                try:
                    emit(bsdiff4.patch(base_fh.read(), patch))
                except Exception as exc:  # bsdiff4 raises ValueError / MemoryError on garbage
                    raise DeltaError(f"bad bsdiff patch: {exc}") from None
            else:
                raise DeltaError(f"unknown delta operation {op!r}")
        if not reader.drain():
            raise DeltaError("bytes after the end of the delta")
        if written != expected_size:
            raise DeltaError(f"delta produced {written} bytes, {expected_size} announced")
        return hasher.hexdigest()
    finally:
        if base_fh:
            base_fh.close()
