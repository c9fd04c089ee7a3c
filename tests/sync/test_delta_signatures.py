"""Deltas built from two signatures (ours, kept by the scan, and the receiver's): only the chunks the
receiver lacks are read, and the result rebuilds exactly what a pass over the file would (same bytes,
same hash), for edits at the start, middle and end, insertions, removals, moved blocks and unrelated
content; a file that changed since its signature gives a delta the receiver's hash check refuses. The
receiver derives the new content's signature from its base's and the ranges the delta copied: the same
signature a pass over the file computes."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path

import blake3
import pytest

from ecosys_core.sync import chunking, objects
from ecosys_core.sync.chunking import Copy, derive_signature, digest_file
from ecosys_core.sync.delta import apply_delta, encode_against, encode_from_signatures

from .harness import make_devices, meet

SIZE = 3 << 20  # above BSDIFF_MAX: chunk deltas


def edits(base: bytes) -> dict[str, bytes]:
    rng = random.Random(7)
    mid = len(base) // 2
    return {
        "same": base,
        "overwrite in the middle": base[:mid] + rng.randbytes(100) + base[mid + 100:],
        "insert near the start": base[:1000] + rng.randbytes(10) + base[1000:],
        "edit at the very start": rng.randbytes(50) + base[50:],
        "appended": base + rng.randbytes(5000),
        "cut at the end": base[:-7000],
        "block moved to the end": base[200_000:] + base[:200_000],
        "unrelated": rng.randbytes(len(base)),
    }


def signature_of(path: Path, data: bytes):
    path.write_bytes(data)
    sig = digest_file(path, with_signature=True).signature
    assert sig is not None
    return sig


def edited_pair(tmp_path: Path, case: str, seed: int):
    """(base path, new path, base signature, new signature, new bytes) for edit ``case`` of random data;
    skips a case whose sizes fall in different chunking classes (the outbox then passes over the file)."""
    base_bytes = random.Random(seed).randbytes(SIZE)
    new_bytes = edits(base_bytes)[case]
    base_path, new_path = tmp_path / "base", tmp_path / "new"
    base_sig = signature_of(base_path, base_bytes)
    new_sig = signature_of(new_path, new_bytes)
    if new_sig.params != base_sig.params:
        pytest.skip("sizes in different chunking classes")
    return base_path, new_path, base_sig, new_sig, new_bytes


@pytest.mark.parametrize("case", list(edits(b"x" * 10)))
def test_delta_from_signatures_rebuilds_the_file(tmp_path: Path, case: str):
    base_path, new_path, base_sig, new_sig, new_bytes = edited_pair(tmp_path, case, 1)
    with open(new_path, "rb") as fh:
        stream = b"".join(encode_from_signatures(fh, new_sig, base_sig))
    with open(new_path, "rb") as fh:
        reference = b"".join(encode_against(fh, base_sig))
    out = io.BytesIO()
    digest = apply_delta([stream], base_path, out, expected_size=len(new_bytes))
    assert out.getvalue() == new_bytes and digest == blake3.blake3(new_bytes).hexdigest()
    assert len(stream) <= len(reference) + 64  # as small as the delta of a whole pass
    if case in ("same", "overwrite in the middle", "insert near the start"):
        assert len(stream) < 16 << 10  # a few chunks of ~1 KiB


def test_only_the_changed_chunks_are_read(tmp_path: Path):
    base_bytes = random.Random(2).randbytes(SIZE)
    new_bytes = base_bytes[:SIZE // 2] + os.urandom(100) + base_bytes[SIZE // 2 + 100:]
    base_sig = signature_of(tmp_path / "base", base_bytes)
    new_sig = signature_of(tmp_path / "new", new_bytes)

    class Counting(io.BytesIO):
        read_bytes = 0

        def read(self, n: int = -1) -> bytes:
            data = super().read(n)
            Counting.read_bytes += len(data)
            return data

    stream = b"".join(encode_from_signatures(Counting(new_bytes), new_sig, base_sig))
    assert Counting.read_bytes < 64 << 10, Counting.read_bytes
    out = io.BytesIO()
    apply_delta([stream], tmp_path / "base", out, expected_size=len(new_bytes))
    assert out.getvalue() == new_bytes


def test_a_file_changed_since_its_signature_is_refused_by_the_hash(tmp_path: Path):
    base_bytes = random.Random(3).randbytes(SIZE)
    new_bytes = base_bytes[:SIZE // 2] + os.urandom(100) + base_bytes[SIZE // 2 + 100:]
    base_sig = signature_of(tmp_path / "base", base_bytes)
    new_sig = signature_of(tmp_path / "new", new_bytes)
    changed = new_bytes[:SIZE // 2] + os.urandom(100) + new_bytes[SIZE // 2 + 100:]  # edited again, same size
    stream = b"".join(encode_from_signatures(io.BytesIO(changed), new_sig, base_sig))
    out = io.BytesIO()
    digest = apply_delta([stream], tmp_path / "base", out, expected_size=len(new_bytes))
    assert digest != blake3.blake3(new_bytes).hexdigest()  # rebuild() refuses it: the announced hash differs


@pytest.mark.parametrize("case", list(edits(b"x" * 10)))
def test_the_derived_signature_is_the_one_a_pass_computes(tmp_path: Path, case: str):
    base_path, new_path, base_sig, new_sig, new_bytes = edited_pair(tmp_path, case, 4)
    for encoder in ("signatures", "pass"):
        with open(new_path, "rb") as fh:
            stream = b"".join(encode_from_signatures(fh, new_sig, base_sig) if encoder == "signatures"
                              else encode_against(fh, base_sig))
        copies: list[Copy] = []
        out = io.BytesIO()
        apply_delta([stream], base_path, out, expected_size=len(new_bytes), copies=copies)
        reads: list[int] = []

        def read(at: int, n: int) -> bytes:
            reads.append(n)
            return new_bytes[at:at + n]

        derived = derive_signature(base_sig, copies, len(new_bytes), read)
        assert derived == new_sig, (case, encoder)
        if case in ("same", "overwrite in the middle", "insert near the start", "cut at the end"):
            assert sum(reads) < 256 << 10  # a few chunks around the edit, not the file


def test_a_derived_signature_without_copies_is_a_whole_cut(tmp_path: Path):
    data = random.Random(5).randbytes(SIZE)
    sig = signature_of(tmp_path / "f", data)
    assert derive_signature(sig, [], len(data), lambda at, n: data[at:at + n]) == sig
    assert derive_signature(sig, [Copy(0, 0, 5)], len(data), lambda at, n: data[at:at + n]) == sig


def test_a_received_edit_keeps_the_signature_a_pass_computes(tmp_path: Path):
    """Two real engines: B derives the signature of A's edited file, and a later edit made on B travels
    back as a small delta against it."""

    a, b = make_devices(tmp_path, 2)
    try:
        data = random.Random(6).randbytes(SIZE)
        a.write("big.bin", data)
        a.scan()
        meet(a, b)
        edited = data[:1000] + b"0123456789" + data[1000:]
        a.write("big.bin", edited)
        a.scan()
        meet(a, b)
        assert (b.root / "big.bin").read_bytes() == edited
        digest = digest_file(b.root / "big.bin", with_signature=True)
        assert b.engine.objects.signature(digest.hash) == digest.signature
        again = edited[:SIZE // 2] + b"back from B" + edited[SIZE // 2 + 11:]
        b.write("big.bin", again)
        b.scan()
        wire = sum(len(m.delta and b"".join(m.delta) or b"") for m in b.engine.outgoing(a.device_id)
                   if m.path == "big.bin")
        assert wire < 16 << 10
    finally:
        a.close()
        b.close()


def test_a_scan_keeps_the_previous_contents_signature_in_memory_for_the_delta(tmp_path: Path, monkeypatch):
    """With room for two parsed signatures, editing the first of two large files keeps the previous
    content's signature (the delta's base) in memory and lets the other file's go: making the delta
    reads no signature back from disk."""
    a, b = make_devices(tmp_path, 2)
    first, second = os.urandom(4 << 20), os.urandom(4 << 20)
    a.write("first.bin", first)
    a.write("second.bin", second)
    a.scan()
    store = a.engine.objects
    held = [store.signature(blake3.blake3(data).hexdigest()) for data in (first, second)]
    assert all(held)
    size = max(s.nbytes for s in held if s)  # room for two of them (and the new one's few more chunks), not three
    monkeypatch.setattr(objects, "RECENT_SIGNATURES", 2 * size + size // 4)
    meet(a, b)  # b holds both: the edit below travels as a delta against first.bin's content
    edited = first[:1 << 20] + b"an edit" + first[(1 << 20) + 7:]
    a.write("first.bin", edited)
    read_back: list[int] = []
    real = chunking.Signature.from_bytes.__func__  # type: ignore[attr-defined]

    def counted(cls: type, data: bytes) -> chunking.Signature:
        read_back.append(len(data))
        return real(cls, data)

    monkeypatch.setattr(chunking.Signature, "from_bytes", classmethod(counted))
    a.scan()
    outgoing = [m for m in a.engine.outgoing(b.device_id) if m.path == "first.bin"]
    assert outgoing and outgoing[0].base_hash == blake3.blake3(first).hexdigest()
    assert read_back == [], "the delta's base signature was pushed out by the new one and read back"


def test_a_signature_written_a_slice_at_a_time_is_its_stored_form(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(chunking, "_WRITE_SLICE", 1000)  # many slices, the last one partial
    signature = signature_of(tmp_path / "f", os.urandom(3 << 20))
    assert len(signature) > 2500
    out = io.BytesIO()
    signature.write_to(out)
    assert out.getvalue() == signature.to_bytes()
    parsed = chunking.Signature.from_bytes(out.getvalue())
    assert (parsed.params, parsed.size, list(parsed.lengths), parsed.digests) == \
        (signature.params, signature.size, list(signature.lengths), signature.digests)
    store = objects.ObjectStore(tmp_path / "objects")
    store.put_signature("ab" * 32, signature)
    assert (tmp_path / "objects" / "sig" / "ab" / ("ab" * 32)).read_bytes() == signature.to_bytes()


def _whole_content_to_b(tmp_path: Path, seed: int, before_meeting) -> None:
    """A scans a new large file and meets B, which has none: after ``before_meeting(a)``, B holds the
    content and keeps its signature, the one a pass over the file computes."""
    a, b = make_devices(tmp_path, 2)
    try:
        data = random.Random(seed).randbytes(SIZE)
        a.write("big.bin", data)
        st = (a.root / "big.bin").stat()  # settled: A sends it without reading it again to hash it
        os.utime(a.root / "big.bin", ns=(st.st_atime_ns, st.st_mtime_ns - 3_000_000_000))
        a.scan()
        expected = digest_file(a.root / "big.bin", with_signature=True)
        before_meeting(a)
        meet(a, b)
        assert (b.root / "big.bin").read_bytes() == data
        assert b.engine.objects.signature(expected.hash) == expected.signature
    finally:
        a.close()
        b.close()


def test_a_whole_content_keeps_the_signature_its_sender_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A large file new to B comes whole, its stream ending with the signature A's scan kept: B keeps
    that one and never cuts the content itself (protocol 3)."""
    from ecosys_core.sync import staging

    class NoCutting(chunking.SignatureBuilder):
        def feed(self, data: bytes | memoryview) -> None:
            raise AssertionError("the receiver cut a content whose signature came with it")

    def no_cutting_from_now_on(a) -> None:  # (A's scan has cut it already)
        monkeypatch.setattr(staging, "SignatureBuilder", NoCutting)
        monkeypatch.setattr(chunking, "SignatureBuilder", NoCutting)  # the engine's cut of a file in place

    _whole_content_to_b(tmp_path, 8, no_cutting_from_now_on)


@pytest.mark.parametrize("sent", ["garbage", "another content's", "none"])
def test_a_sent_signature_that_does_not_fit_its_content_is_replaced_by_a_cut(tmp_path: Path, sent: str,
                                                                              monkeypatch: pytest.MonkeyPatch):
    """What a sender's signature says is checked against the content's size and chunking; one that does
    not parse or fit (or that never came) leaves B cutting the content itself, which arrives whole."""
    other = signature_of(tmp_path / "other.bin", random.Random(10).randbytes(SIZE + 5000)).to_bytes()
    replacement = {"garbage": b"ECS2 not a signature", "another content's": other, "none": None}[sent]
    _whole_content_to_b(tmp_path, 9, lambda a: monkeypatch.setattr(a.engine.objects, "signature_bytes",
                                                                 lambda digest: replacement))


def test_a_received_signature_is_checked_a_slice_at_a_time_to_its_last_entry():
    """check_signature_bytes reads the lengths in slices (not 0.5 MB at once at 128 MiB): a bad length
    in any slice, the last included, is still refused."""
    import struct

    from ecosys_core.sync.chunking import Signature, check_signature_bytes, chunk_params, lengths_array

    count = 40_000  # three slices of 16,384 entries
    size = 1024 * count
    params = chunk_params(size)
    good = Signature(params, size, lengths_array([1024] * count), os.urandom(16 * count)).to_bytes()
    check_signature_bytes(good, size)
    for entry, length in ((count - 1, 0), (20_000, params[2] + 1), (16_384, 1023)):
        at = 28 + 20 * entry
        bad = good[:at] + struct.pack(">I", length) + good[at + 4:]
        with pytest.raises(ValueError):
            check_signature_bytes(bad, size)
    with pytest.raises(ValueError):
        check_signature_bytes(good, size + 1)
    parsed = Signature.from_bytes(good)  # parsing reads the same slices, and keeps every length
    assert list(parsed.lengths) == [1024] * count and parsed.size == size
    empty = Signature(chunk_params(0), 0, lengths_array(), b"").to_bytes()
    assert Signature.from_bytes(empty).size == 0
