"""Decompression bombs in deltas: every decompression is bounded by the announced size before it runs,
so a few KiB of delta can never take more than a few MiB of memory."""

from __future__ import annotations

import bz2
import io
import struct
import tracemalloc
from pathlib import Path

import pytest
import pyzstd

from ecosys_core.sync.chunking import Signature, SignatureBuilder
from ecosys_core.sync.delta import DeltaError, apply_delta

BOMB = 256 << 20  # what the bombs below decompress to, if let


def peak_while(fn) -> int:
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_a_zstd_literal_that_expands_past_its_announced_size_is_refused_within_a_few_mib():
    packed = pyzstd.compress(bytes(BOMB), 19)
    assert len(packed) < 32_000
    delta = b"Z" + struct.pack(">II", len(packed), 1000) + packed + b"E"

    def apply() -> None:
        with pytest.raises(DeltaError, match="wrong size"):
            apply_delta([delta], None, io.BytesIO(), expected_size=1000)

    assert peak_while(apply) < 8 << 20


def test_a_zstd_literal_larger_than_what_is_left_is_refused_before_decoding():
    packed = pyzstd.compress(bytes(2000), 3)
    delta = b"Z" + struct.pack(">II", len(packed), 2000) + packed + b"E"
    with pytest.raises(DeltaError, match="more bytes than announced"):
        apply_delta([delta], None, io.BytesIO(), expected_size=1000)


def test_a_bsdiff_patch_whose_blocks_expand_past_the_file_is_refused_within_a_few_mib(tmp_path: Path):
    base = tmp_path / "base"
    base.write_bytes(b"x" * 1000)
    control, diff, extra = bz2.compress(struct.pack("<qqq", 1000, 0, 0)), bz2.compress(bytes(BOMB)), bz2.compress(b"")
    assert len(diff) < 1000
    patch = (b"BSDIFF40" + struct.pack("<qqq", len(control), len(diff), 1000) + control + diff + extra)
    delta = b"B" + struct.pack(">I", len(patch)) + patch + b"E"

    def apply() -> None:
        with pytest.raises(DeltaError, match="larger than its file"):
            apply_delta([delta], base, io.BytesIO(), expected_size=1000)

    assert peak_while(apply) < 8 << 20


def test_a_signature_with_chunk_parameters_ecosys_does_not_use_is_refused():
    builder = SignatureBuilder(10_000)
    builder.feed(bytes(10_000))
    good = builder.signature().to_bytes()
    assert Signature.from_bytes(good).size == 10_000
    hostile = good[:4] + struct.pack(">III", 1, 2**31, 2**32 - 1) + good[16:]
    with pytest.raises(ValueError, match="parameters"):
        Signature.from_bytes(hostile)


def test_a_signature_trailer_is_taken_only_after_the_delta_ends():
    """A stream may end with the content's signature (a SignatureTrailer, protocol 3): after the end
    operation it is handed over; inside the delta, twice, or followed by more bytes it is refused."""
    import os

    import blake3

    from ecosys_core.sync.delta import encode_full
    from ecosys_core.sync.messages import SignatureTrailer

    data = os.urandom(3000)
    delta = b"".join(encode_full(io.BytesIO(data)))
    trailer = SignatureTrailer(b"the content's signature")
    taken: list[bytes] = []
    out = io.BytesIO()
    assert apply_delta([delta, trailer], None, out, expected_size=len(data), trailer=taken.append) \
        == blake3.blake3(data).hexdigest()
    assert taken == [trailer] and out.getvalue() == data
    assert apply_delta([delta, trailer], None, io.BytesIO(), expected_size=len(data))  # no taker: dropped
    for blocks, error in (([delta[:100], trailer, delta[100:]], "ends too early"),
                          ([delta, trailer, trailer], "after the end"),
                          ([delta, trailer, b"x"], "after the end")):
        with pytest.raises(DeltaError, match=error):
            apply_delta(blocks, None, io.BytesIO(), expected_size=len(data), trailer=taken.append)
    assert taken == [trailer]
