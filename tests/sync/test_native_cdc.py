"""The C chunker (ecosys_core/sync/_cdc.c) cuts exactly where the fastcdc package cuts, which is the
reference: same chunk lengths for every size and parameter set, so signatures and deltas made on a
device with it and on one without it match."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import pytest
from fastcdc.fastcdc_py import GEAR

from ecosys_core.sync import chunking
from ecosys_core.sync.chunking import SignatureBuilder, _package_cut, _package_digests, chunk_digest, chunk_params

from .native_build import build_native


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    module = build_native("_cdc", tmp_path_factory.mktemp("native"))
    with pytest.raises(ValueError, match="set_gear"):
        module.cut(b"x" * 5000, 512, 1024, 4096)
    module.set_gear(GEAR)
    return module


PARAMS = [(512, 1024, 4096), (64, 256, 1024), (4096, 8192, 32768), chunk_params(1 << 30), (1000, 3000, 9000)]


@pytest.mark.parametrize("params", PARAMS, ids=lambda p: "-".join(map(str, p)))
def test_cuts_equal_the_package_cuts(native: ModuleType, params: tuple[int, int, int]):
    random = os.urandom(3 << 20)
    runs = b"\x00" * 300_000 + random[:100_000] + b"\xff" * 200_000  # no cut point: max-size chunks
    for data in (random, runs, random[: params[0] - 1], random[: params[0]], random[: 70_000], b""):
        assert native.cut(data, *params) == _package_cut(data, *params)
    assert sum(native.cut(random, *params)) == len(random)
    assert native.cut(memoryview(random)[5:], *params) == _package_cut(random[5:], *params)


def test_bad_arguments_are_refused(native: ModuleType):
    for params in [(10, 1024, 4096), (512, 256, 4096), (512, 1024, 1000)]:
        with pytest.raises(ValueError):
            native.cut(b"data", *params)
    with pytest.raises(ValueError):
        native.set_gear([1, 2, 3])
    with pytest.raises((ValueError, OverflowError)):
        native.set_gear([0] * 255 + [1 << 40])  # the last entry is bad: none of the table is taken
    with pytest.raises(TypeError):
        native.cut("not bytes", 512, 1024, 4096)
    assert native.cut(b"x" * 100, 64, 256, 1024) == _package_cut(b"x" * 100, 64, 256, 1024)


def test_chunk_digests_equal_those_made_in_python(native: ModuleType):
    data = os.urandom(1 << 20)
    ends = [e for e in range(0, len(data) + 1, 777)][1:] + [len(data)]
    assert native.digests(data, ends, chunk_digest) == _package_digests(data, ends)
    assert native.digests(memoryview(data)[3:], [10, 10, 500], chunk_digest) == _package_digests(data[3:], [10, 10, 500])
    assert native.digests(b"", [], chunk_digest) == b""
    for bad in ([5, 4], [len(data) + 1], [-1], ["x"]):
        with pytest.raises((ValueError, TypeError)):
            native.digests(data, bad, chunk_digest)
    with pytest.raises(ValueError, match="16 bytes"):
        native.digests(data, [10], lambda chunk: b"short")
    with pytest.raises(ZeroDivisionError):
        native.digests(data, [10], lambda chunk: 1 / 0)


def xxh3_address() -> int:
    import ctypes

    from xxhash import _xxhash
    return ctypes.cast(ctypes.CDLL(_xxhash.__file__).XXH3_128bits, ctypes.c_void_p).value


def test_chunks_hashed_in_c_without_the_gil_equal_those_made_in_python(native: ModuleType):
    """The chunk digests computed in C (the xxhash package's own XXH3-128, called without the GIL)
    are the package's digests, byte for byte; bad ends are refused as by ``digests``."""
    data = os.urandom(1 << 20)
    ends = [e for e in range(0, len(data) + 1, 777)][1:] + [len(data)]
    with pytest.raises(ValueError, match="set_chunk_hash"):  # this build's own, not chunking's
        native.hashed_digests(data, ends)
    native.set_chunk_hash(xxh3_address())
    assert native.hashed_digests(data, ends) == _package_digests(data, ends)
    assert native.hashed_digests(memoryview(data)[3:], [10, 10, 500]) == _package_digests(data[3:], [10, 10, 500])
    assert native.hashed_digests(b"", []) == b""
    for bad in ([5, 4], [len(data) + 1], [-1], ["x"]):
        with pytest.raises((ValueError, TypeError)):
            native.hashed_digests(data, bad)


def test_join_copies_two_buffers_end_to_end(native: ModuleType):
    a, b = os.urandom(5000), os.urandom(1 << 20)
    assert native.join(a, b) == a + b
    assert native.join(b"", memoryview(b)[7:]) == b[7:]
    assert native.join(bytearray(a), b"") == a
    with pytest.raises(TypeError):
        native.join("text", b"")


def test_chunk_hashing_in_c_is_used_only_when_it_gives_the_same_digests(monkeypatch: pytest.MonkeyPatch):
    if not list(Path(chunking.__file__).parent.glob("_cdc*.so")):
        pytest.skip("no C chunker was built next to chunking.py (no compiler at install)")
    hashed = chunking._hashed_in_c()
    assert hashed is not None and chunking.chunk_digests is hashed
    monkeypatch.setenv("ECOSYS_CHUNK_HASH_IN_C", "0")
    assert chunking._hashed_in_c() is None
    monkeypatch.delenv("ECOSYS_CHUNK_HASH_IN_C")
    monkeypatch.setattr(chunking, "_package_digests", lambda data, ends: b"\0" * 16 * len(ends))
    assert chunking._hashed_in_c() is None  # a function that disagrees with the package is not used


def test_signatures_are_the_same_with_and_without_it(native: ModuleType, monkeypatch: pytest.MonkeyPatch):
    data = os.urandom(5 << 20)

    def signature() -> tuple[object, bytes]:
        builder = SignatureBuilder(len(data))
        for start in range(0, len(data), 300_000):  # blocks that do not fall on chunk boundaries
            builder.feed(data[start:start + 300_000])
        sig = builder.signature()
        return sig.lengths, sig.digests

    monkeypatch.setattr(chunking, "cut_lengths", native.cut)
    monkeypatch.setattr(chunking, "chunk_digests", lambda data, ends: native.digests(data, ends, chunk_digest))
    with_native = signature()
    monkeypatch.setattr(chunking, "cut_lengths", _package_cut)
    monkeypatch.setattr(chunking, "chunk_digests", _package_digests)
    assert signature() == with_native


def test_the_built_chunker_is_the_one_in_use():
    if not list(Path(chunking.__file__).parent.glob("_cdc*.so")):
        pytest.skip("no C chunker was built next to chunking.py (no compiler at install): the package cuts")
    assert chunking.cut_lengths is not _package_cut
    assert chunking.chunk_digests is not _package_digests
