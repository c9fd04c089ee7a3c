"""Deltas decoded from blocks cut anywhere: the reader hands out views of the blocks it was given, so
every way a stream can be split (operations and literals straddling blocks, empty blocks, one byte at a
time) must rebuild the same bytes, the same hash and the same chunk signature; and a malformed stream
is refused whatever its split."""

from __future__ import annotations

import io
import os
import random
import struct
from pathlib import Path

import blake3
import pytest

from ecosys_core.sync.chunking import SignatureBuilder, digest_file
from ecosys_core.sync.delta import READ_BLOCK, DeltaError, apply_delta, encode_against, encode_bsdiff, encode_full


def split(stream: bytes, cuts: list[int]) -> list[bytes]:
    """``stream`` cut at ``cuts`` (with an empty block at each repeated cut)."""
    out, last = [], 0
    for cut in sorted(cuts) + [len(stream)]:
        out.append(stream[last:cut])
        last = cut
    return out


def splits(stream: bytes) -> list[list[bytes]]:
    rng = random.Random(len(stream))
    return [[stream], split(stream, [1, 1, 5]), split(stream, rng.sample(range(len(stream)), min(40, len(stream)))),
            split(stream, list(range(0, len(stream), 4093))), [stream[i:i + 1] for i in range(min(len(stream), 3000))]
            + [stream[3000:]]]


def rebuild(blocks: list[bytes], base: Path | None, size: int) -> tuple[bytes, str, SignatureBuilder]:
    out = io.BytesIO()
    signature = SignatureBuilder(size)
    digest = apply_delta(blocks, base, out, expected_size=size, observe=signature.feed)
    return out.getvalue(), digest, signature


@pytest.mark.parametrize("kind", ["full", "chunks", "bsdiff"])
def test_any_split_rebuilds_the_same_content_hash_and_signature(tmp_path: Path, kind: str):
    rng = random.Random(7)
    old = rng.randbytes(600_000)
    new = bytearray(old)
    new[1000:1000] = b"inserted" * 300
    new[400_000:400_100] = bytes(100)
    new = bytes(new) + b"text " * 50_000  # a tail zstd shrinks: compressed literals too
    base = tmp_path / "base"
    base.write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    if kind == "full":
        stream = b"".join(encode_full(io.BytesIO(new)))
    elif kind == "chunks":
        stream = b"".join(encode_against(io.BytesIO(new), digest_file(base, with_signature=True).signature))
    else:
        stream = b"".join(encode_bsdiff(old, new))
    assert kind == "full" or len(stream) < len(new) // 2
    expected_sig = digest_file(tmp_path / "new", with_signature=True).signature
    for blocks in splits(stream):
        data, digest, signature = rebuild(blocks, base if kind != "full" else None, len(new))
        assert data == new
        assert digest == blake3.blake3(new).hexdigest()
        assert signature.signature() == expected_sig


def literal(data: bytes) -> bytes:
    return b"L" + struct.pack(">I", len(data)) + data


@pytest.mark.parametrize("stream, error", [
    (literal(b"abc"), "ends too early"),  # no end
    (literal(b"abc")[:-1], "ends too early"),
    (literal(b"abc") + b"E" + b"more", "after the end"),
    (b"X", "unknown delta operation b'X'"),
    (b"L" + struct.pack(">I", 64 << 20), "literal too large"),
    (b"C" + struct.pack(">QI", 0, 3) + b"E", "copy outside the base"),
    (literal(b"abcd") + b"E", "more bytes than announced"),
    (literal(b"ab") + b"E", "2 bytes, 3 announced"),
])
def test_a_malformed_delta_is_refused_however_it_is_split(stream: bytes, error: str):
    for blocks in splits(stream):
        with pytest.raises(DeltaError, match=error):
            apply_delta(blocks, None, io.BytesIO(), expected_size=3)


def test_a_literal_split_across_blocks_is_written_from_them_without_joining():
    """A 1 MiB literal arrives in the several buffers its DATA frame was received in: each piece is
    written (and hashed, and observed) where it lies, never joined into one copy first."""
    data = os.urandom(1 << 20)
    stream = literal(data) + b"E"
    blocks = split(stream, [3, 300_000, 600_000, 900_000])  # the literal's head split too
    seen: list[bytes | memoryview] = []
    out = io.BytesIO()
    digest = apply_delta(blocks, None, out, expected_size=len(data), observe=seen.append)
    assert out.getvalue() == data and digest == blake3.blake3(data).hexdigest()
    assert [len(piece) for piece in seen] == [300_000 - 5, 300_000, 300_000, len(data) - 900_000 + 5]
    assert all(isinstance(piece, memoryview) for piece in seen)


def test_a_copy_reads_the_base(tmp_path: Path):
    base = tmp_path / "base"
    base.write_bytes(os.urandom(3 << 20))
    stream = b"C" + struct.pack(">QI", 1 << 20, 2 << 20) + literal(b"!") + b"E"
    data, _, _ = rebuild(split(stream, [3, 13, 14]), base, (2 << 20) + 1)
    assert data == base.read_bytes()[1 << 20:] + b"!"


def test_literals_compressed_one_after_another_each_decode_alone():
    """Each thread reuses one zstd compressor: every literal is still a whole frame of its own, the bytes
    a fresh compressor makes."""
    import pyzstd

    texts = [f"line {i} of a text file\n".encode() * (50 + i) for i in range(5)]
    deltas = [b"".join(encode_full(io.BytesIO(text))) for text in texts]
    for text, delta in zip(texts, deltas):
        assert delta[:1] == b"Z"
        assert delta[9:-1] == pyzstd.compress(text, 3)
        out = io.BytesIO()
        apply_delta([delta], None, out, expected_size=len(text))
        assert out.getvalue() == text


def test_a_whole_content_that_does_not_compress_is_read_behind_its_literal_heads():
    """Past the two blocks that would not shrink, each block is read into the literal itself (no copy
    behind its head): the same stream of 1 MiB literals, the last one short, as joining them makes."""
    data = os.urandom(3 * READ_BLOCK + 12345)
    blocks = list(encode_full(io.BytesIO(data)))
    expected = [b"L" + struct.pack(">I", len(data[at:at + READ_BLOCK])) + data[at:at + READ_BLOCK]
                for at in range(0, len(data), READ_BLOCK)] + [b"E"]
    assert [bytes(b) for b in blocks] == expected
    out = io.BytesIO()
    apply_delta(blocks, None, out, expected_size=len(data))
    assert out.getvalue() == data
    assert list(encode_full(io.BytesIO(data[:2 * READ_BLOCK]))) == expected[:2] + [b"E"]  # exactly two
