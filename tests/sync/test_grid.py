"""Grid digests (ecosys_core/sync/grid.py): the C loops give exactly the Python reference's digests;
with the base's grid kept, a small edit of a large file travels as the blocks it touched (a 100-byte
overwrite or a 10-byte insert anywhere: at most ~1.1 KiB of delta, where whole chunks made up to 4.9 KB);
a grid digest that names the wrong block makes a content the hash check refuses; and between two real
engines each device keeps the grid of what it holds, so edits travel that small both ways."""

from __future__ import annotations

import io
import os
import random
from pathlib import Path
from types import ModuleType

import blake3
import pytest

from ecosys_core.sync import grid
from ecosys_core.sync.chunking import digest_file
from ecosys_core.sync.delta import apply_delta, encode_from_signatures
from ecosys_core.sync.grid import GRID, GridBuilder, _package_grid, _package_windows, block_digest
from ecosys_core.sync.objects import ObjectStore

from .harness import make_devices, meet
from .native_build import build_native

SIZE = 3 << 20  # above BSDIFF_MAX: chunk deltas, chunks of ~1 KiB as at 128 MiB


@pytest.fixture(scope="module")
def native(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return build_native("_cdc", tmp_path_factory.mktemp("native"))


def samples() -> list[bytes]:
    rng = random.Random(1)
    return [rng.randbytes(5 * GRID + 77), b"\xff" * (3 * GRID), b"\x00" * (2 * GRID), rng.randbytes(GRID - 1), b""]


def nh(block: bytes) -> bytes:
    """The digest of ``block`` written out from its definition (UMAC's NH, keys splitmix64(1, 2, ...),
    folded, fmix64, top 32 bits)."""
    import struct

    mask = (1 << 64) - 1
    words = struct.unpack(f"<{len(block) // 8}Q", block)
    keys = [grid._key(i) for i in range(len(words))]
    total = sum(((words[i] + keys[i]) & mask) * ((words[i + 1] + keys[i + 1]) & mask) for i in range(0, len(words), 2))
    x = (total & mask) ^ ((total >> 64) & mask)
    for shift, factor in ((33, 0xFF51AFD7ED558CCD), (33, 0xC4CEB9FE1A85EC53), (33, 1)):
        x ^= x >> shift
        x = (x * factor) & mask
    return (x >> 32).to_bytes(4, "big")


def test_native_grid_and_windows_equal_the_reference(native: ModuleType):
    assert grid._key(0) == 0xE220A8397B1DCDAF  # splitmix64's first output: the keys never change
    for data in samples():
        assert native.grid(data, GRID) == _package_grid(data)
        assert native.windows(data, GRID) == _package_windows(data)
        whole = len(data) // GRID
        assert _package_grid(data) == b"".join(nh(data[GRID * k:GRID * (k + 1)]) for k in range(whole))
    data = samples()[0]
    windows = native.windows(data, GRID)
    for k in (0, 1, 300, len(data) - GRID):  # a window at a block's offset has the block's digest
        assert windows[4 * k:4 * k + 4] == block_digest(data[k:k + GRID]).to_bytes(4, "big")
    assert native.grid(memoryview(data)[3:], GRID) == _package_grid(data[3:])
    for size in (16, 64, 4096):  # other block sizes, against the definition
        assert native.grid(data, size) == b"".join(nh(data[at:at + size]) for at in range(0, len(data) - size + 1, size))
    for size in (0, 100, 1 << 17):
        with pytest.raises(ValueError):
            native.grid(data, size)


def test_any_one_byte_changed_changes_the_digest():
    """Every byte of a block reaches its digest: NH's sum alone keeps a change in a word's low bytes out
    of its top bits, so the first digest taken that way let windows an edit had touched pass for the
    old blocks (a content rebuilt wrong, refused by its hash, in a test here)."""
    block = bytearray(random.Random(11).randbytes(GRID))
    before = block_digest(block)
    windows = grid.window_digests(bytes(block) * 2)
    for at in range(GRID):
        for delta in (1, 0x80):
            changed = bytearray(block)
            changed[at] ^= delta
            assert block_digest(changed) != before, (at, delta)
            assert grid.grid_digests(bytes(changed)) != before.to_bytes(4, "big")
    digests = [windows[4 * k:4 * k + 4] for k in range(GRID + 1)]
    assert digests[0] == digests[GRID] == before.to_bytes(4, "big")
    assert before.to_bytes(4, "big") not in digests[1:GRID]  # no window shifted off the block passes for it


def test_the_built_loops_are_the_ones_in_use():
    if not list(Path(grid.__file__).parent.glob("_cdc*.so")):
        pytest.skip("the C module is not built in this checkout")
    assert grid.grid_digests is not _package_grid and grid.window_digests is not _package_windows


def test_a_grid_fed_in_any_pieces_is_the_grid_of_the_whole():
    data = random.Random(2).randbytes(20 * GRID + 300)
    builder = GridBuilder()
    at, sizes = 0, [1, 511, 513, 7, GRID, 3 * GRID + 5, 9000]
    for size in sizes * 10:
        builder.feed(memoryview(data)[at:at + size])
        at += size
        if at >= len(data):
            break
    builder.feed(data[at:])
    assert builder.seen == len(data)
    assert bytes(builder.result()) == grid.grid_digests(data) == _package_grid(data)


def _edit_delta(tmp_path: Path, base: bytes, new: bytes, *, with_grid: bool = True,
                blocks=None) -> tuple[bytes, bytes]:
    """(delta stream, rebuilt bytes) for ``new`` against ``base``, the base's grid kept in a real store."""
    (tmp_path / "base").write_bytes(base)
    (tmp_path / "new").write_bytes(new)
    base_digest = digest_file(tmp_path / "base", with_signature=True)
    new_digest = digest_file(tmp_path / "new", with_signature=True)
    store = ObjectStore(tmp_path / "objects")
    store.put_grid(base_digest.hash, base_digest.grid)
    if blocks is None and with_grid:
        blocks = lambda start, end: store.grid_blocks(base_digest.hash, start, end)  # noqa: E731
    with open(tmp_path / "new", "rb") as fh:
        stream = b"".join(encode_from_signatures(fh, new_digest.signature, base_digest.signature, blocks))
    out = io.BytesIO()
    digest = apply_delta([stream], tmp_path / "base", out, expected_size=len(new))
    assert (digest == blake3.blake3(new).hexdigest()) == (out.getvalue() == new)
    return stream, out.getvalue()


def test_small_edits_anywhere_travel_as_the_blocks_they_touch(tmp_path: Path):
    base = random.Random(3).randbytes(SIZE)
    rng = random.Random(4)
    sizes = {"overwrite": [], "insert": []}
    for trial in range(24):
        at = rng.randrange(0, SIZE - 200)
        overwrite = base[:at] + rng.randbytes(100) + base[at + 100:]
        insert = base[:at] + rng.randbytes(10) + base[at:]
        for kind, new in (("overwrite", overwrite), ("insert", insert)):
            folder = tmp_path / f"{kind}{trial}"
            folder.mkdir()
            stream, rebuilt = _edit_delta(folder, base, new)
            assert rebuilt == new
            sizes[kind].append(len(stream))
    # at most two blocks of literal for 100 bytes, one block and the 10 bytes for an insert, plus the
    # operations around them (before grids: up to 4.9 KB, the whole chunks around the edit)
    assert max(sizes["overwrite"]) <= 2 * GRID + 120, sizes
    assert max(sizes["insert"]) <= GRID + 10 + 120, sizes


def test_without_a_grid_the_changed_chunks_travel_whole(tmp_path: Path):
    base = random.Random(5).randbytes(SIZE)
    new = base[:SIZE // 2] + b"x" * 100 + base[SIZE // 2 + 100:]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fine, rebuilt_fine = _edit_delta(tmp_path / "a", base, new)
    whole, rebuilt_whole = _edit_delta(tmp_path / "b", base, new, with_grid=False)
    assert rebuilt_fine == rebuilt_whole == new
    assert len(fine) < len(whole)


def test_a_grid_digest_naming_the_wrong_block_is_refused_by_the_hash(tmp_path: Path):
    """A false match (two blocks with one digest) copies the wrong bytes: the rebuilt content does not
    hash to the announced one, so rebuild() refuses it and the content is asked for whole."""
    base = random.Random(6).randbytes(SIZE)
    new = base[:SIZE // 2] + os.urandom(100) + base[SIZE // 2 + 100:]

    def lying(start: int, end: int) -> dict[int, int]:
        window = new[SIZE // 2 - 20:SIZE // 2 - 20 + GRID]  # bytes of the edit named as some base block
        return {block_digest(window): 0}

    stream, rebuilt = _edit_delta(tmp_path, base, new, blocks=lying)
    assert rebuilt != new  # and _edit_delta checked that the hash says so


def test_grid_blocks_reads_only_the_blocks_asked_for(tmp_path: Path):
    data = random.Random(7).randbytes(40 * GRID + 100)
    store = ObjectStore(tmp_path / "objects")
    store.put_grid("cd" * 32, grid.grid_digests(data))
    blocks = store.grid_blocks("cd" * 32, 3 * GRID - 1, 10 * GRID + 5)
    assert sorted(blocks.values()) == [GRID * k for k in range(3, 10)]  # whole blocks inside the range
    assert blocks[block_digest(data[5 * GRID:6 * GRID])] == 5 * GRID
    assert store.grid_blocks("cd" * 32, -GRID, GRID) == {block_digest(data[:GRID]): 0}
    assert store.grid_blocks("ef" * 32, 0, 10 * GRID) == {}  # none kept: chunks only


def test_both_engines_keep_grids_and_edits_travel_small_both_ways(tmp_path: Path):
    """Two real engines: A's scan keeps the grid of its file; B, which receives it whole, keeps the same
    grid from the bytes it wrote; A's edit travels as a block or two, and so does B's edit back, made
    against the content B rebuilt (whose grid B took while rebuilding it)."""
    a, b = make_devices(tmp_path, 2)
    try:
        data = random.Random(8).randbytes(SIZE)
        a.write("big.bin", data)
        a.scan()
        first = digest_file(a.root / "big.bin", with_signature=True)
        meet(a, b)
        assert (b.root / "big.bin").read_bytes() == data
        for device in (a, b):
            kept = device.home.objects / "grid" / first.hash[:2] / first.hash
            assert kept.read_bytes() == first.grid

        edited = data[:SIZE // 3] + b"0123456789" + data[SIZE // 3:]
        a.write("big.bin", edited)
        a.scan()
        wire = [len(b"".join(m.delta)) for m in a.engine.outgoing(b.device_id) if m.path == "big.bin" and m.delta]
        assert wire and wire[0] <= GRID + 10 + 120, wire
        meet(a, b)
        assert (b.root / "big.bin").read_bytes() == edited
        second = digest_file(b.root / "big.bin", with_signature=True)
        assert (b.home.objects / "grid" / second.hash[:2] / second.hash).read_bytes() == second.grid

        again = edited[:2 * SIZE // 3] + b"back from B".ljust(100, b"!") + edited[2 * SIZE // 3 + 100:]
        b.write("big.bin", again)
        b.scan()
        wire = [len(b"".join(m.delta)) for m in b.engine.outgoing(a.device_id) if m.path == "big.bin" and m.delta]
        assert wire and wire[0] <= 2 * GRID + 120, wire
        meet(a, b)
        assert (a.root / "big.bin").read_bytes() == again
    finally:
        a.close()
        b.close()


def test_without_the_c_loop_no_grid_is_kept_and_edits_still_travel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Python would take 0.8 s per 128 MiB for a grid: a device without the C module keeps none, and its
    edits travel as whole chunks, as before grids."""
    monkeypatch.setattr(grid, "_loops", None)
    a, b = make_devices(tmp_path, 2)
    try:
        data = random.Random(9).randbytes(SIZE)
        a.write("big.bin", data)
        a.scan()
        assert digest_file(a.root / "big.bin", with_signature=True).grid is None
        meet(a, b)
        edited = data[:SIZE // 2] + b"x" * 100 + data[SIZE // 2 + 100:]
        a.write("big.bin", edited)
        a.scan()
        meet(a, b)
        assert (b.root / "big.bin").read_bytes() == edited
        for device in (a, b):
            assert not (device.home.objects / "grid").exists()
    finally:
        a.close()
        b.close()


def test_a_grid_is_kept_only_for_a_rebuilt_content_that_checks_out(tmp_path: Path):
    """The receiver writes a grid to a temp file as the bytes go by (not 1 MiB held until the end) and
    moves it into place once the content's hash is checked: a rebuild the hash refuses, or one dropped
    unkept, leaves neither grid nor temp file behind."""
    import gc

    from ecosys_core.errors import IntegrityError
    from ecosys_core.sync.delta import encode_full
    from ecosys_core.sync.messages import Modification
    from ecosys_core.sync.staging import new_signature, rebuild

    data = random.Random(10).randbytes(SIZE)
    store = ObjectStore(tmp_path / "objects")
    right = blake3.blake3(data).hexdigest()

    def receive(announced: str) -> None:
        m = Modification("5e" * 16, "big.bin", {"a": 1}, announced, len(data), 0, "a", False, "",
                         encode_full(io.BytesIO(data)))
        signature = new_signature(store, m)
        temp = rebuild(tmp_path / "big.bin", m, None, signature=signature)
        signature.result(temp)
        temp.unlink()

    with pytest.raises(IntegrityError):
        receive("0" * 64)
    gc.collect()
    assert not [p for p in (tmp_path / "objects").rglob("*") if p.is_file()]
    receive(right)
    kept = [p for p in (tmp_path / "objects" / "grid").rglob("*") if p.is_file()]
    assert kept == [tmp_path / "objects" / "grid" / right[:2] / right]
    assert kept[0].read_bytes() == grid.grid_digests(data)

    pending = store.begin("grid", "ab" * 32)
    pending.file.write(b"half a grid")
    del pending
    gc.collect()
    assert not (tmp_path / "objects" / "grid" / "ab").exists() or not list((tmp_path / "objects" / "grid" / "ab").iterdir())
