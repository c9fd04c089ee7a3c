"""Deltas: how new content travels as a stream of operations against content the receiver has.

Stream format (all integers big-endian), ended by ``E``:

- ``L`` u32 n, n bytes ........ literal bytes
- ``Z`` u32 n, u32 raw, n bytes  zstd-compressed literal (``raw`` bytes once decompressed)
- ``C`` u64 offset, u32 n ..... copy n bytes of the base from offset
- ``B`` u32 n, n bytes ........ a bsdiff4 patch of the whole base (small files only)
- ``E`` ....................... end

A stream may carry one :class:`messages.SignatureTrailer` after its end: the new content's chunk
signature, kept by whoever rebuilds it (``apply_delta``'s ``trailer``).

Three encoders: the whole content (no base), bsdiff4 against the old bytes (files up to
``BSDIFF_MAX``, where bsdiff is cheap: docs/decisions.md), and content-defined chunks against the
base's :class:`Signature` (any size, bounded memory), the changed ones searched for the base's grid
blocks where its grid is kept (:mod:`grid`). The decoder streams, checks every bound, and
never trusts a length it was given.
"""

from __future__ import annotations

import bz2
import os
import struct
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator

import blake3
import bsdiff4
import bsdiff4.core
import pyzstd

from ..errors import IntegrityError
from .chunking import DIGEST_SIZE, READ_BLOCK, Copy, Signature, chunk_digest, content_hasher, iter_chunks
from .grid import GRID, refine
from .messages import SignatureTrailer

BSDIFF_MAX = 1 << 20
MAX_LITERAL = 4 << 20
REFINE_MAX = 64 << 10  # bytes of changed chunks in a row searched for the base's grid blocks
_ZSTD_LEVEL = 3


class DeltaError(IntegrityError):
    """A delta is malformed or does not fit its base; nothing was written."""


_compressors = threading.local()


def _compress(data: bytes) -> bytes:
    """One zstd frame of ``data``, from this thread's compressor: making one per call cost 11 of the
    17 µs spent on each small file (2,000 of them are tried in a first sync), the same bytes out."""
    compressor = getattr(_compressors, "zstd", None)
    if compressor is None:
        compressor = _compressors.zstd = pyzstd.ZstdCompressor(_ZSTD_LEVEL)
    try:
        return compressor.compress(data, pyzstd.ZstdCompressor.FLUSH_FRAME)
    except BaseException:  # (out of memory) a frame left half made: the next call starts afresh
        _compressors.zstd = None
        raise


def _literal(data: bytes, compress: bool = True) -> bytes:
    if compress:
        packed = _compress(data)
        if len(packed) < len(data) * 0.9:
            return b"Z" + struct.pack(">II", len(packed), len(data)) + packed
    return b"L" + struct.pack(">I", len(data)) + data


def encode_full(stream: BinaryIO) -> Iterator[bytes | bytearray]:
    """The whole content of ``stream`` as literals, compressed while compressing pays (media and
    archives stop being tried after two blocks that would not shrink). Once it stops trying, each block
    is read behind the room for its operation's head, so the literal is the read itself, not a copy of it."""
    misses = 0
    while misses < 2:
        block = stream.read(READ_BLOCK)
        if not block:
            yield b"E"
            return
        literal = _literal(block)
        misses = misses + 1 if literal[:1] == b"L" else 0
        yield literal
    while True:
        literal = bytearray(5 + READ_BLOCK)
        n = stream.readinto(memoryview(literal)[5:])
        if not n:
            break
        if n < READ_BLOCK:
            del literal[5 + n:]
        literal[:5] = b"L" + struct.pack(">I", n)
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

    def pieces() -> Iterator[tuple[int, int] | bytes]:
        for chunk in iter_chunks(stream, base.params):
            hit = known.get(chunk_digest(chunk))
            yield hit if hit is not None and hit[1] == len(chunk) else chunk

    return _operations(pieces())


def encode_from_signatures(stream: BinaryIO, new: Signature, base: Signature,
                           base_blocks: Callable[[int, int], dict[int, int]] | None = None) -> Iterator[bytes]:
    """``stream``'s content, which ``new`` describes (its chunks cut with ``base``'s parameters), as
    copies of the base's chunks plus literals read for the chunks the base lacks: only those are read,
    so a small edit of a large file costs a few reads, not a pass over it. If the file changed since
    ``new`` was taken, the result is wrong and the receiver's hash check refuses it (then the whole
    content is asked for).

    ``base_blocks(start, end)``: the base's grid blocks in bytes ``[start, end)`` (:meth:`ObjectStore.grid_blocks`),
    when its grid is kept. Where few chunks differ, the chunks the base lacks are then searched for those
    blocks, so only the blocks an edit touched travel (:func:`grid.refine`)."""
    if new.params != base.params:
        raise ValueError("signatures cut with different parameters")
    # An edit leaves the chunks before and after it alone: those are one copy each, and only the
    # middle is looked up, in the base's middle unless it is large (content moved far is then found too)
    head = _common_run(new, base, backwards=False)
    tail = _common_run(new, base, backwards=True, limit=min(len(new), len(base)) - head)
    middle = range(head, len(new) - tail)
    head_bytes, tail_bytes = sum(new.lengths[:head]), sum(new.lengths[len(new) - tail:])
    blocks: dict[int, int] = {}
    if len(middle) > 1024:
        known = base.index()
    else:
        known = base.part(head, len(base) - tail).index(start=sum(base.lengths[:head]))
        if base_blocks is not None:
            blocks = base_blocks(head_bytes - GRID, base.size - tail_bytes + GRID)

    def literal(start: int, end: int) -> Iterator[tuple[int, int] | bytes]:
        if blocks and end - start <= REFINE_MAX:
            yield from _refined(stream, start, end, new.size, blocks)
        else:
            yield from _read_range(stream, start, end)

    def pieces() -> Iterator[tuple[int, int] | bytes]:
        if head_bytes:
            yield 0, head_bytes
        offset = start = end = head_bytes  # [start, end): the run of chunks the base lacks, read when it ends
        for i in middle:
            length, hit = new.lengths[i], known.get(new.digest(i))
            if hit is not None and hit[1] == length:
                if end > start:
                    yield from literal(start, end)
                start = end = offset + length
                yield hit
            else:
                end = offset + length
            offset += length
        if end > start:
            yield from literal(start, end)
        if tail_bytes:
            yield base.size - tail_bytes, tail_bytes

    return _operations(pieces())


def _refined(stream: BinaryIO, start: int, end: int, size: int,
             blocks: dict[int, int]) -> Iterator[tuple[int, int] | bytes]:
    """New bytes ``[start, end)`` as copies of the base's grid blocks where found, literals elsewhere.
    The search reaches a block less than one past each end, so a block the edges cut through is
    found too; what it finds there is clipped to ``[start, end)``."""
    lo, hi = max(0, start - GRID + 1), min(size, end + GRID - 1)
    region = b"".join(_read_range(stream, lo, hi))
    for piece in refine(region, lo, blocks):
        at, length = piece[0], piece[-1]
        first, last = max(at, start), min(at + length, end)
        if first >= last:
            continue
        if len(piece) == 3:
            yield piece[1] + first - at, last - first
        else:
            yield region[first - lo:last - lo]


def _common_run(a: Signature, b: Signature, *, backwards: bool, limit: int | None = None) -> int:
    """How many chunks ``a`` and ``b`` share at their start (or end): same lengths, same digests. Found
    by halving with list comparisons, which run in C."""
    top = min(len(a), len(b)) if limit is None else limit
    d = DIGEST_SIZE

    def same(k: int) -> bool:
        if backwards:
            return k == 0 or (a.digests[-d * k:] == b.digests[-d * k:] and a.lengths[-k:] == b.lengths[-k:])
        return a.digests[:d * k] == b.digests[:d * k] and a.lengths[:k] == b.lengths[:k]

    low, high = 0, max(top, 0)
    while low < high:
        mid = (low + high + 1) // 2
        if same(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _read_range(stream: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    stream.seek(start)
    while start < end:
        block = stream.read(min(READ_BLOCK, end - start))
        if not block:
            return  # shorter than its signature says: the receiver's hash check refuses the result
        start += len(block)
        yield block


def _operations(pieces: Iterable[tuple[int, int] | bytes | memoryview]) -> Iterator[bytes]:
    """The stream for a sequence of base ranges ``(offset, length)`` and literal bytes: adjacent copies
    merged, literals gathered up to READ_BLOCK."""
    literal = bytearray()
    copy_off = copy_len = 0
    for piece in pieces:
        if isinstance(piece, tuple):
            if literal:
                yield _literal(bytes(literal))
                literal.clear()
            if copy_len and copy_off + copy_len == piece[0]:
                copy_len += piece[1]
            else:
                if copy_len:
                    yield b"C" + struct.pack(">QI", copy_off, copy_len)
                copy_off, copy_len = piece
            continue
        if copy_len:
            yield b"C" + struct.pack(">QI", copy_off, copy_len)
            copy_len = 0
        literal += piece
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
    more times on its way to the disk. Only a read that straddles blocks joins them. A
    :class:`SignatureTrailer` may only come after the delta's end (:meth:`drain` keeps it)."""

    def __init__(self, blocks: Iterable[bytes]) -> None:
        self._it = iter(blocks)
        self._block = memoryview(b"")
        self._pos = 0
        self.trailer: SignatureTrailer | None = None

    def read(self, n: int) -> bytes | memoryview:
        block, pos = self._block, self._pos
        if pos + n <= len(block):
            self._pos = pos + n
            return block[pos:pos + n]
        return b"".join(self.parts(n))

    def parts(self, n: int) -> Iterator[memoryview]:
        """The next ``n`` bytes as views of the blocks they lie in, in order: a 1 MiB literal spans the
        several buffers its DATA frame was received in, and is not joined to be written."""
        while n:
            block, pos = self._block, self._pos
            if pos == len(block):
                raw = next(self._it, None)
                if raw is None or isinstance(raw, SignatureTrailer):
                    raise DeltaError("delta ends too early")
                self._block, self._pos = memoryview(raw), 0
                continue
            take = min(n, len(block) - pos)
            self._pos = pos + take
            n -= take
            yield block[pos:pos + take]

    def drain(self) -> bool:
        """True when nothing follows but, perhaps, one signature trailer (then kept in :attr:`trailer`)."""
        if self._pos < len(self._block):
            return False
        for block in self._it:
            if isinstance(block, SignatureTrailer) and self.trailer is None:
                self.trailer = block
            elif block:
                return False
        return True


def _bounded_bz2(data: bytes, limit: int) -> bytes:
    """One bz2 stream decompressed, refused (DeltaError) as soon as it would exceed ``limit`` bytes."""
    decompressor = bz2.BZ2Decompressor()
    try:
        out = decompressor.decompress(data, max_length=limit + 1)
    except (OSError, ValueError) as exc:
        raise DeltaError(f"bad bsdiff patch: {exc}") from None
    if len(out) > limit or not decompressor.eof or decompressor.unused_data:
        raise DeltaError("bsdiff patch block larger than its file")
    return out


def _bsdiff_blocks(patch: bytes, expected_size: int) -> tuple[int, bytes, bytes, bytes]:
    """(new size, control, diff, extra) of a BSDIFF40 patch, each block decompressed only up to what a
    file of at most ``expected_size`` bytes can need, so a small patch cannot take memory (a bz2 bomb)."""
    if len(patch) < 32 or patch[:8] != b"BSDIFF40":
        raise DeltaError("not a bsdiff4 patch")
    sizes = []
    for raw in (patch[8:16], patch[16:24], patch[24:32]):
        size = int.from_bytes(raw[:7] + bytes([raw[7] & 0x7F]), "little")
        sizes.append(-size if raw[7] & 0x80 else size)
    control_len, diff_len, new_size = sizes
    if min(sizes) < 0 or new_size > expected_size or 32 + control_len + diff_len > len(patch):
        raise DeltaError("bsdiff patch announces the wrong size")
    control = _bounded_bz2(patch[32:32 + control_len], 24 * (new_size + 1))
    if len(control) % 24:
        raise DeltaError("bad bsdiff patch: invalid control block")
    diff = _bounded_bz2(patch[32 + control_len:32 + control_len + diff_len], new_size)
    extra = _bounded_bz2(patch[32 + control_len + diff_len:], new_size)
    return new_size, control, diff, extra


def _bounded_zstd(data: bytes | memoryview, size: int) -> bytes:
    """A zstd frame that must decompress to exactly ``size`` bytes; decoding stops past that."""
    decompressor = pyzstd.ZstdDecompressor()
    try:
        out = decompressor.decompress(data, max_length=size + 1)
    except pyzstd.ZstdError as exc:
        raise DeltaError(f"bad compressed literal: {exc}") from None
    if len(out) != size or not decompressor.eof or decompressor.unused_data:
        raise DeltaError("compressed literal has the wrong size")
    return out


class _Decoder:
    """Applies one delta stream, operation by operation, into ``out``; every size is checked against
    what is left of ``expected_size`` before anything is read, decompressed or written."""

    def __init__(self, blocks: Iterable[bytes], base: Path | None, out: BinaryIO, expected_size: int,
                 observe: Callable[[bytes | memoryview], None] | None, copies: list[Copy] | None = None,
                 beside: Callable[[bytes | memoryview], None] | None = None) -> None:
        self.reader = _Reader(blocks)
        self.out, self.observe, self.copies = out, observe, copies
        self.expected_size = expected_size
        # a large content's BLAKE3 in a helper thread while this one cuts and digests it for its signature
        # (only then: the helper's queue holds received blocks longer, 2-4 MiB at the receiver's peak)
        self.hasher = content_hasher(expected_size, observe is not None, beside)
        self._hashed = False
        self.written = 0
        self.base_fh = open(base, "rb") if base is not None else None
        self.base_size = os.fstat(self.base_fh.fileno()).st_size if self.base_fh else 0

    @property
    def room(self) -> int:
        return self.expected_size - self.written

    def check_room(self, n: int) -> None:
        """Refuse an operation that would write past the announced size, before it reads anything."""
        if n > self.room:
            raise DeltaError("delta produces more bytes than announced")

    def emit(self, data: bytes | memoryview) -> None:
        self.written += len(data)
        if self.written > self.expected_size:
            raise DeltaError("delta produces more bytes than announced")
        self.hasher.update(data)
        self.out.write(data)
        if self.observe is not None:
            self.observe(data)

    def literal(self) -> None:
        (n,) = struct.unpack(">I", self.reader.read(4))
        if n > MAX_LITERAL:
            raise DeltaError("literal too large")
        self.check_room(n)
        for part in self.reader.parts(n):
            self.emit(part)

    def compressed(self) -> None:
        n, raw = struct.unpack(">II", self.reader.read(8))
        if n > MAX_LITERAL or raw > MAX_LITERAL:
            raise DeltaError("literal too large")
        self.check_room(raw)
        self.emit(_bounded_zstd(self.reader.read(n), raw))

    def copy(self) -> None:
        offset, n = struct.unpack(">QI", self.reader.read(12))
        if self.base_fh is None or offset + n > self.base_size:
            raise DeltaError("copy outside the base")
        self.check_room(n)
        if self.copies is not None:
            self.copies.append(Copy(self.written, offset, n))
        self.base_fh.seek(offset)
        while n:
            piece = self.base_fh.read(min(n, READ_BLOCK))
            if not piece:
                raise DeltaError("base changed while reading it")
            self.emit(piece)
            n -= len(piece)

    def bsdiff(self) -> None:
        (n,) = struct.unpack(">I", self.reader.read(4))
        if self.base_fh is None or self.base_size > BSDIFF_MAX * 4 or n > MAX_LITERAL * 4:
            raise DeltaError("bsdiff patch without a small base")
        new_size, control, diff, extra = _bsdiff_blocks(bytes(self.reader.read(n)), min(self.room, BSDIFF_MAX * 4))
        self.base_fh.seek(0)
        try:
            self.emit(bsdiff4.core.patch(self.base_fh.read(), new_size, control, diff, extra))
        except Exception as exc:  # bsdiff4 raises ValueError / MemoryError on garbage
            raise DeltaError(f"bad bsdiff patch: {exc}") from None

    def run(self) -> str:
        operations = {b"L": self.literal, b"Z": self.compressed, b"C": self.copy, b"B": self.bsdiff}
        while (op := bytes(self.reader.read(1))) != b"E":
            operation = operations.get(op)
            if operation is None:
                raise DeltaError(f"unknown delta operation {op!r}")
            operation()
        if not self.reader.drain():
            raise DeltaError("bytes after the end of the delta")
        if self.written != self.expected_size:
            raise DeltaError(f"delta produced {self.written} bytes, {self.expected_size} announced")
        self._hashed = True
        return self.hasher.finish()

    def close(self) -> None:
        if not self._hashed:  # a failed delta: the helper thread, if any, must still end
            self._hashed = True
            try:
                self.hasher.finish()
            except Exception:  # the delta's own error is the one raised
                pass
        if self.base_fh:
            self.base_fh.close()


def apply_delta(blocks: Iterable[bytes], base: Path | None, out: BinaryIO, *, expected_size: int,
                observe: Callable[[bytes | memoryview], None] | None = None, copies: list[Copy] | None = None,
                trailer: Callable[[SignatureTrailer], None] | None = None,
                beside: Callable[[bytes | memoryview], None] | None = None) -> str:
    """Write the content described by ``blocks`` (against file ``base``) into ``out``; return its BLAKE3.

    Raises DeltaError when the delta is malformed, reaches outside the base, or grows past
    ``expected_size``; no operation reads, decompresses or writes more than what is left of it, so
    memory stays bounded whatever the delta claims. The caller verifies the returned hash before
    anything is moved into place. ``observe`` sees every byte written (to build a chunk signature in
    the same pass); ``copies`` gets every range copied from the base (to derive the new content's
    signature from the base's: :func:`chunking.derive_signature`); ``trailer`` gets the signature trailer
    the stream ended with, if any (dropped without it); ``beside`` sees every byte written too, in the
    thread that hashes them (the grid digests, :mod:`grid`: with a signature cut here, beside the cut).
    """
    decoder = _Decoder(blocks, base, out, expected_size, observe, copies, beside)
    try:
        content_hash = decoder.run()
    finally:
        decoder.close()
    if decoder.reader.trailer is not None and trailer is not None:
        trailer(decoder.reader.trailer)
    return content_hash
