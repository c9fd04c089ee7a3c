"""Content hashes and content-defined chunk signatures, computed in one streaming pass over a file.

The file hash is BLAKE3 (fastest cryptographic hash here, MEASUREMENTS.md). Large files are also cut
into FastCDC chunks; the signature (chunk lengths and 16-byte XXH3-128 digests) lets a peer describe the
content it has so a delta can be built against it without the old bytes. The average chunk grows with
the file (1 KiB up to 128 MiB files, then doubling) so a signature never exceeds ~131k entries.

Chunk digests only say which chunks are worth copying from the base, never what content is right: the
rebuilt file is always checked against its BLAKE3 hash, and discarded if it differs. So they need not
resist forgery, and XXH3 costs 0.05 s per 128 MiB (131k chunks) where a BLAKE3 call per chunk cost
0.24 s, most of it call overhead (docs/decisions.md).
"""

from __future__ import annotations

import os
import queue
import struct
import sys
import threading
from array import array
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate
from operator import sub
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, Iterator, NamedTuple

import blake3
import xxhash
from fastcdc.fastcdc_cy import fastcdc_cy

from .grid import grid_builder

READ_BLOCK = 1 << 20
_MAX_ENTRIES = 131_072
_SIG_MAGIC = b"ECS2"  # ECS1 had BLAKE3 chunk digests
_ENTRY_SIZE = 20  # one chunk on disk and on the wire: length (u32, big-endian), 16-byte digest
_WRITE_SLICE = 16384  # chunks written at a time (320 KiB)
DIGEST_SIZE = 16
_U32 = "I" if array("I").itemsize == 4 else "L"


def hash_bytes(data: bytes) -> str:
    """BLAKE3 hex digest of ``data``."""
    return blake3.blake3(data).hexdigest()


chunk_digest = xxhash.xxh3_128_digest  # 16 bytes identifying one chunk of a signature


def _native_cut() -> Callable[[bytes, int, int, int], list[int]] | None:
    """The C chunker (``_cdc.c``, the fastcdc package's cuts for its gear table) where it was built;
    None to cut with the package itself. ``ECOSYS_PURE_CDC=1`` forces the package."""
    if os.environ.get("ECOSYS_PURE_CDC"):
        return None
    try:
        from fastcdc.fastcdc_py import GEAR

        from ._cdc import cut, set_gear  # type: ignore[import-not-found]
    except ImportError:
        return None
    set_gear(GEAR)
    return cut


def _package_cut(data: bytes, mn: int, avg: int, mx: int) -> list[int]:
    return [c.length for c in fastcdc_cy(data, mn, avg, mx)]


cut_lengths: Callable[[bytes, int, int, int], list[int]] = _native_cut() or _package_cut
"""The FastCDC chunk lengths of ``data`` for (min, avg, max), in order."""


USED_PARAMS = frozenset((1 << k >> 1, 1 << k, 1 << k << 2) for k in range(10, 21))  # every chunk_params result


def chunk_params(size: int) -> tuple[int, int, int]:
    """(min, avg, max) chunk sizes for a file of ``size`` bytes."""
    avg = 1024
    while size // avg > _MAX_ENTRIES and avg < (1 << 20):
        avg *= 2
    return avg // 2, avg, avg * 4


def lengths_array(values: Iterable[int] = ()) -> array:
    """An array of chunk lengths (4 bytes each: a signature's lengths as Python ints would cost 9 times
    that, and 131,072 of them live per large file)."""
    return array(_U32, values)


@dataclass
class Signature:
    """Chunk lengths and digests of one content, with the chunking parameters used. Kept compact: the
    lengths in an array, the 16-byte digests end to end in one bytes object (chunk ``i`` at ``16 * i``),
    so a 128 MiB file's signature is 2.5 MiB in memory, not 131,072 Python objects of each kind."""

    params: tuple[int, int, int]
    size: int
    lengths: array
    digests: bytes

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def nbytes(self) -> int:
        """Bytes it holds in memory (lengths and digests)."""
        return len(self.digests) + self.lengths.itemsize * len(self.lengths)

    def digest(self, i: int) -> bytes:
        """The digest of chunk ``i``."""
        return self.digests[DIGEST_SIZE * i:DIGEST_SIZE * (i + 1)]

    def part(self, i: int, j: int) -> "Signature":
        """Chunks ``i`` to ``j - 1`` alone (their size as ``size``)."""
        lengths = self.lengths[i:j]
        return Signature(self.params, sum(lengths), lengths, self.digests[DIGEST_SIZE * i:DIGEST_SIZE * j])

    def to_bytes(self) -> bytes:
        """The stored and wire form: a header, then (u32 length, digest) per chunk, big-endian."""
        return b"".join(self._parts())

    def write_to(self, out: BinaryIO) -> None:
        """Write :meth:`to_bytes` to ``out`` a slice at a time: a 128 MiB file's signature is 2.6 MB,
        and built whole, with its copies, it was the receiver's peak of memory (~8 MB at once)."""
        for part in self._parts():
            out.write(part)

    def _parts(self) -> Iterator[bytes | bytearray]:
        count = len(self.lengths)
        yield _SIG_MAGIC + struct.pack(">IIIQI", *self.params, self.size, count)
        for start in range(0, count, _WRITE_SLICE):
            end = min(count, start + _WRITE_SLICE)
            big = array(_U32, self.lengths[start:end])
            if sys.byteorder == "little":
                big.byteswap()
            raw = big.tobytes()
            digests = self.digests[start * DIGEST_SIZE:end * DIGEST_SIZE]
            body = bytearray(_ENTRY_SIZE * (end - start))
            # Interleaved by strided slice copies (C loops), not one packed object per chunk
            for k in range(4):
                body[k::_ENTRY_SIZE] = raw[k::4]
            for k in range(DIGEST_SIZE):
                body[4 + k::_ENTRY_SIZE] = digests[k::DIGEST_SIZE]
            yield body

    @classmethod
    def from_bytes(cls, data: bytes) -> "Signature":
        """Parse :meth:`to_bytes`; ValueError for anything Ecosys does not write itself."""
        if not isinstance(data, bytes):
            data = bytes(data)
        params, size, lengths = _checked_lengths(data)
        digests = bytearray(DIGEST_SIZE * len(lengths))
        for k in range(DIGEST_SIZE):
            digests[k::DIGEST_SIZE] = data[32 + k::_ENTRY_SIZE]
        return cls(params, size, lengths, bytes(digests))

    def index(self, start: int = 0) -> dict[bytes, tuple[int, int]]:
        """digest → (offset, length) of the first chunk with that digest (offsets from ``start``)."""
        out: dict[bytes, tuple[int, int]] = {}
        ends = range(DIGEST_SIZE, DIGEST_SIZE * len(self.lengths) + 1, DIGEST_SIZE)
        digests = map(self.digests.__getitem__, map(slice, range(0, len(self.digests), DIGEST_SIZE), ends))
        for digest, offset, length in zip(digests, accumulate(self.lengths, initial=start), self.lengths):
            out.setdefault(digest, (offset, length))
        return out


def _checked_lengths(data: bytes, keep: bool = True) -> tuple[tuple[int, int, int], int, array]:
    """The chunking parameters, content size and chunk lengths of a signature in its stored form, each
    checked; ValueError for anything Ecosys does not write itself. The lengths are read a slice at a
    time; ``keep=False``: they are only checked, and none are returned (0.5 MB less at 128 MiB)."""
    if data[:4] != _SIG_MAGIC or len(data) < 28:
        raise ValueError("not a chunk signature")
    mn, avg, mx, size, count = struct.unpack(">IIIQI", data[4:28])
    if (mn, avg, mx) not in USED_PARAMS:  # only what Ecosys itself uses: no 4 GiB chunks to hold
        raise ValueError("chunk parameters Ecosys does not use")
    if len(data) != 28 + _ENTRY_SIZE * count or count > 4 * _MAX_ENTRIES:
        raise ValueError("truncated chunk signature")
    kept = lengths_array()
    total, low, high = 0, mx, 0
    for start in range(0, count, _WRITE_SLICE):
        end = min(count, start + _WRITE_SLICE)
        entries = memoryview(data)[28 + _ENTRY_SIZE * start:28 + _ENTRY_SIZE * end]
        raw = bytearray(4 * (end - start))
        for k in range(4):
            raw[k::4] = entries[k::_ENTRY_SIZE]
        lengths = lengths_array()
        lengths.frombytes(raw)
        if sys.byteorder == "little":
            lengths.byteswap()
        total, low, high = total + sum(lengths), min(low, min(lengths)), max(high, max(lengths))
        if keep:
            kept += lengths
    if total != size or (count and (low <= 0 or high > mx)):
        raise ValueError("inconsistent chunk signature")
    return (mn, avg, mx), size, kept


def check_signature_bytes(data: bytes, size: int) -> None:
    """ValueError unless ``data`` is a signature as Ecosys stores it (:meth:`Signature.to_bytes`) of a
    content of ``size`` bytes: what a received one must be to be kept as it came. Only its lengths are
    read, a slice at a time (parsing it whole takes 5 MB more than it at 128 MiB)."""
    params, described, _ = _checked_lengths(data, keep=False)
    if described != size or params != chunk_params(size):
        raise ValueError("the signature describes a content of another size")


def _native_join() -> Callable[[bytes, bytes | memoryview], bytes]:
    """``_cdc.join`` where it was built (the copy runs without the GIL), else ``+``."""
    try:
        from ._cdc import join  # type: ignore[import-not-found]
    except ImportError:
        return lambda a, b: a + b
    return join  # type: ignore[no-any-return]


_join = _native_join()  # a + b; in C, without the GIL, where it was built


class Chunker:
    """Push-based FastCDC: ``feed`` bytes as they come, get the chunks that are final; ``finish`` at the end.

    Boundaries equal those of chunking the whole content at once: the last chunk of what was fed is
    held back until at least ``max`` more bytes follow it, since it may still grow.
    """

    def __init__(self, params: tuple[int, int, int]) -> None:
        self.params = params
        self._carry = b""

    def feed_ends(self, block: bytes | memoryview) -> tuple[bytes | memoryview, list[int]]:
        """The chunks now final, as the bytes they lie in and where each ends in them (no copies)."""
        mn, avg, mx = self.params
        data = _join(self._carry, block) if self._carry else block
        if len(data) < 2 * mx:
            self._carry = bytes(data)
            return b"", []
        ends = list(accumulate(cut_lengths(data, mn, avg, mx)))
        final = bisect_right(ends, len(data) - mx)
        ends = ends[:final]
        self._carry = bytes(memoryview(data)[ends[-1] if ends else 0:])
        return data, ends

    def finish_ends(self) -> tuple[bytes, list[int]]:
        """The remaining chunks, as :meth:`feed_ends` gives them."""
        data, self._carry = self._carry, b""
        return data, list(accumulate(cut_lengths(data, *self.params))) if data else []

    def feed(self, block: bytes | memoryview) -> list[memoryview]:
        """The chunks now final, as views of the bytes fed (no copies)."""
        return _views(*self.feed_ends(block))

    def finish(self) -> list[memoryview]:
        """The remaining chunks."""
        return _views(*self.finish_ends())


def _views(data: bytes | memoryview, ends: list[int]) -> list[memoryview]:
    # Sliced by C loops (map), not a Python loop: a 128 MiB file has 131,072 chunks.
    return list(map(memoryview(data).__getitem__, map(slice, [0, *ends[:-1]], ends)))


def _package_digests(data: bytes | memoryview, ends: list[int]) -> bytes:
    return b"".join(map(chunk_digest, _views(data, ends)))


def _native_digests() -> Callable[[bytes | memoryview, list[int]], bytes] | None:
    """The C loop over the chunks where it was built: hashing each chunk in C without the GIL
    (:func:`_hashed_in_c`), else calling ``chunk_digest`` per chunk; None to loop in Python.
    ``ECOSYS_PURE_CDC=1`` forces Python."""
    if os.environ.get("ECOSYS_PURE_CDC"):
        return None
    try:
        from ._cdc import digests  # type: ignore[import-not-found]
    except ImportError:
        return None
    return _hashed_in_c() or (lambda data, ends: digests(data, ends, chunk_digest))


def _hashed_in_c() -> Callable[[bytes | memoryview, list[int]], bytes] | None:
    """``_cdc.hashed_digests``, bound to the XXH3-128 of the xxhash package's own extension (which
    exports it), if it gives ``chunk_digest``'s digests; None where it cannot be found or differs.
    ``ECOSYS_CHUNK_HASH_IN_C=0`` turns it off."""
    if os.environ.get("ECOSYS_CHUNK_HASH_IN_C") == "0":
        return None
    try:
        import ctypes

        from xxhash import _xxhash  # type: ignore[attr-defined]

        from ._cdc import hashed_digests, set_chunk_hash  # type: ignore[import-not-found]

        found = ctypes.CDLL(_xxhash.__file__).XXH3_128bits
        set_chunk_hash(ctypes.cast(found, ctypes.c_void_p).value or 0)
    except (ImportError, OSError, AttributeError, ValueError):
        return None
    sample = bytes(range(256)) * 40
    ends = [0, 1, 17, 240, 1000, 4096, len(sample)]
    if hashed_digests(sample, ends) != _package_digests(sample, ends):
        return None
    return hashed_digests  # type: ignore[no-any-return]


chunk_digests: Callable[[bytes | memoryview, list[int]], bytes] = _native_digests() or _package_digests
"""The digests of the chunks of ``data`` ending at ``ends``, 16 bytes each, end to end."""


def iter_chunks(stream: BinaryIO, params: tuple[int, int, int]) -> Iterator[memoryview]:
    """Yield the FastCDC chunks of ``stream`` (as views), holding at most a few MiB at a time."""
    chunker = Chunker(params)
    while block := stream.read(max(READ_BLOCK, 4 * params[2])):
        yield from chunker.feed(block)
    yield from chunker.finish()


class SignatureBuilder:
    """Builds the chunk signature of content seen once, as it streams by (while it is written, say)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._chunker = Chunker(chunk_params(size))
        self._lengths = lengths_array()
        self._digests = bytearray()
        self.seen = 0  # bytes fed

    def _take(self, data: bytes | memoryview, ends: list[int]) -> None:
        self._lengths.extend(map(sub, ends, [0, *ends[:-1]]))
        self._digests += chunk_digests(data, ends)

    def feed(self, data: bytes | memoryview) -> None:
        self.seen += len(data)
        self._take(*self._chunker.feed_ends(data))

    def signature(self) -> Signature:
        self._take(*self._chunker.finish_ends())
        return Signature(self._chunker.params, sum(self._lengths), self._lengths, bytes(self._digests))


@dataclass
class FileDigest:
    """What one read of a file tells: size, BLAKE3 hex, and the chunk signature and grid digests when
    asked for; the mtime the file had when the read began, and whether its size and mtime were the same
    when it ended (``steady``; False: it was being written meanwhile, and what was read may be no state
    it ever had)."""

    size: int
    hash: str
    signature: Signature | None
    mtime_ns: int = 0
    steady: bool = True
    grid: bytes | bytearray | None = None  # grid digests (:mod:`grid`), taken with the signature


# Files this large are hashed with help from other threads: their BLAKE3 beside their signature here,
# and, in a scan, beside the smaller files (scanner._observe_all).
PARALLEL_HASH_MIN = 8 << 20


class HashBeside:
    """BLAKE3 of the blocks given to :meth:`update`, taken in a helper thread while the caller cuts and
    digests the same blocks for the signature: both run without the GIL, so a large file's hash and
    signature take about the longer of the two, not their sum (docs/decisions.md, "Stop 27"). ``also``
    sees each block there too, after the hash (the grid digests: the cutting thread is the busier)."""

    def __init__(self, also: Callable[[bytes], None] | None = None) -> None:
        self._hasher = blake3.blake3()
        self._also = also
        self._blocks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)  # at most 4 blocks ahead
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="ecosys-blake3", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (block := self._blocks.get()) is not None:
            if self._error is None:  # after an error, still take the blocks: the caller never waits on a full queue
                try:
                    self._hasher.update(block)
                    if self._also is not None:
                        self._also(block)
                except BaseException as exc:  # raised by finish, in the caller's thread
                    self._error = exc

    def update(self, block: bytes) -> None:
        self._blocks.put(block)

    def finish(self) -> str:
        """Wait for the blocks given so far; their BLAKE3 hex digest. Call it once, also on error."""
        self._blocks.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._hasher.hexdigest()


class _HashHere:
    """BLAKE3 in the caller's thread, with :class:`HashBeside`'s interface."""

    def __init__(self, also: Callable[[bytes], None] | None = None) -> None:
        self._hasher = blake3.blake3()
        self._also = also

    def update(self, block: bytes | memoryview) -> None:
        self._hasher.update(block)
        if self._also is not None:
            self._also(block)

    def finish(self) -> str:
        return self._hasher.hexdigest()


def content_hasher(size: int, signed: bool,
                   also: Callable[[bytes], None] | None = None) -> HashBeside | _HashHere:
    """A BLAKE3 for a content of ``size`` bytes read once: in a helper thread when its signature is
    taken in the same pass (``signed``) and it is large, so the two run side by side; ``finish`` gives
    the hex digest (call it once, also on error). ``also`` sees every block where the hash does."""
    return HashBeside(also) if signed and size >= PARALLEL_HASH_MIN else _HashHere(also)


def digest_file(path: Path, *, with_signature: bool) -> FileDigest:
    """Hash ``path`` in one streaming pass, also computing its chunk signature and grid digests if
    ``with_signature``."""
    size = 0
    with open(path, "rb") as fh:
        before = os.fstat(fh.fileno())
        expected = before.st_size
        builder = SignatureBuilder(expected) if with_signature else None
        grid = grid_builder() if with_signature else None
        hasher = content_hasher(expected, builder is not None, grid.feed if grid is not None else None)
        read = max(READ_BLOCK, 4 * chunk_params(expected)[2])
        try:
            while block := fh.read(read):
                hasher.update(block)
                size += len(block)
                if builder is not None:
                    builder.feed(block)
        finally:
            digest = hasher.finish()
        after = os.fstat(fh.fileno())
    steady = size == after.st_size == before.st_size and after.st_mtime_ns == before.st_mtime_ns
    return FileDigest(size, digest, builder.signature() if builder is not None else None,
                      before.st_mtime_ns, steady, grid.result() if grid is not None else None)


class Copy(NamedTuple):
    """A range of new content copied from the base: ``length`` bytes at ``at`` in the new content, from
    ``base_at`` in the base."""

    at: int
    base_at: int
    length: int


def derive_signature(base: Signature, copies: list[Copy], size: int,
                     read: Callable[[int, int], bytes]) -> Signature:
    """The signature of new content of ``size`` bytes made of ``copies`` of the base (described by
    ``base``) and other bytes, without a pass over it: a chunk's end depends only on the bytes from its
    start to its end, so where a new chunk starts at a base chunk's start inside a copied range, the base's
    chunks carry over while they lie in that range; only the bytes around the rest are read (``read(at,
    n)``) and cut. The result equals what :func:`digest_file` computes (tests compare them); were it
    ever wrong, a delta built against it would fail its hash check and travel whole."""
    params = chunk_params(size)
    if params != base.params:
        raise ValueError("the new content is chunked with other parameters")
    mn, avg, mx = params
    base_ends = list(accumulate(base.lengths))
    base_starts = {end: i + 1 for i, end in enumerate(base_ends[:-1])}
    base_starts[0] = 0
    lengths = lengths_array()
    digests = bytearray()
    at, k = 0, 0
    while at < size:
        while k < len(copies) and copies[k].at + copies[k].length <= at:
            k += 1
        copy = copies[k] if k < len(copies) and copies[k].at <= at else None
        i = base_starts.get(copy.base_at + at - copy.at) if copy is not None else None
        if copy is not None and i is not None:
            # base chunks i..j-1 end inside this copy; the base's last chunk only where the new content ends too
            copy_end = copy.base_at + copy.length
            j = bisect_right(base_ends, copy_end, lo=i)
            if j == len(base_ends) and not (copy_end == base.size and copy.at + copy.length == size):
                j -= 1
            if j > i:
                lengths += base.lengths[i:j]
                digests += base.digests[DIGEST_SIZE * i:DIGEST_SIZE * j]
                at += base_ends[j - 1] - (base_ends[i - 1] if i else 0)
                continue
        data = read(at, min(mx, size - at))
        length = cut_lengths(data, mn, avg, mx)[0]
        lengths.append(length)
        digests += chunk_digest(data[:length])
        at += length
    return Signature(params, size, lengths, bytes(digests))
