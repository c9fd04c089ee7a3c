"""Large files are hashed in helper threads while the scan goes through the small ones (issue 17): what
a scan records must be exactly what the one-thread scan records, in the same order (the order of the
events a peer receives)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ecosys_core.sync import grid, scanner
from ecosys_core.sync.places import Places


def _tree(root: Path) -> None:
    for i in range(30):
        folder = root / f"d{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i}.bin").write_bytes(os.urandom(100 + 37 * i))
    for name in ("big-b.bin", "a-big.bin", "d1/big.bin", "zz/big.bin"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(os.urandom(3 << 20))


def _summary(result: scanner.ScanResult) -> list[tuple]:
    return [(o.path, o.size, o.digest.hash if o.digest else None,
             len(o.digest.signature) if o.digest and o.digest.signature else 0) for o in result.changed]


def _scan(root: Path) -> scanner.ScanResult:
    return scanner.scan_tree(Places(root), lambda: {}, lambda: {})


def test_a_scan_with_large_files_hashed_beside_it_records_what_one_thread_records(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch):
    _tree(tmp_path)
    monkeypatch.setattr(scanner, "PARALLEL_HASH_MIN", 1 << 20)  # the four 3 MiB files go to the helpers
    threads = []
    real = scanner._observe

    def observe(*args):  # type: ignore[no-untyped-def]
        threads.append((args[1], __import__("threading").current_thread().name))
        return real(*args)

    monkeypatch.setattr(scanner, "_observe", observe)
    together = _scan(tmp_path)
    monkeypatch.setattr(scanner.os, "cpu_count", lambda: 1)  # one core: no helpers
    alone = _scan(tmp_path)
    assert {rel for rel, name in threads if name.startswith("ecosys-hash")} == \
        {"a-big.bin", "big-b.bin", "d1/big.bin", "zz/big.bin"}
    assert _summary(together) == _summary(alone)
    assert [o.path for o in together.changed] == sorted(o.path for o in together.changed)
    assert together.bytes_hashed == alone.bytes_hashed == sum(p.stat().st_size for p in tmp_path.rglob("*.bin"))
    assert len(together.changed) == 34 and all(o.digest.signature for o in together.changed if "big" in o.path)


def test_an_error_in_a_helper_thread_reaches_the_scan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    _tree(tmp_path)
    monkeypatch.setattr(scanner, "PARALLEL_HASH_MIN", 1 << 20)
    real = scanner.digest_file

    def digest(path: Path, **kw):  # type: ignore[no-untyped-def]
        if path.name == "a-big.bin":
            raise RuntimeError("disk on fire")
        return real(path, **kw)

    monkeypatch.setattr(scanner, "digest_file", digest)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _scan(tmp_path)


def test_a_large_files_hash_taken_beside_its_signature_is_the_one_taken_inline(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch):
    import blake3

    from ecosys_core.sync import chunking

    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(9 << 20))
    threads = []
    real = chunking.HashBeside.__init__

    def counted(self, also=None):  # type: ignore[no-untyped-def]
        threads.append(1)
        real(self, also)

    monkeypatch.setattr(chunking.HashBeside, "__init__", counted)
    beside = chunking.digest_file(path, with_signature=True)
    monkeypatch.setattr(chunking, "PARALLEL_HASH_MIN", 1 << 40)
    inline = chunking.digest_file(path, with_signature=True)
    assert threads == [1]  # the first took its hash in the helper thread, the second did not
    assert beside.hash == inline.hash == blake3.blake3(path.read_bytes()).hexdigest()
    assert beside.signature.to_bytes() == inline.signature.to_bytes() and beside.size == inline.size == 9 << 20
    assert beside.grid == inline.grid == grid.grid_digests(path.read_bytes())  # taken in the helper, then inline


def test_a_read_error_midway_ends_the_helper_and_reaches_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import threading

    from ecosys_core.sync import chunking

    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(9 << 20))
    reads = []
    real_open = open

    class Failing:
        def __init__(self, fh):  # type: ignore[no-untyped-def]
            self.fh = fh

        def __enter__(self):  # type: ignore[no-untyped-def]
            return self

        def __exit__(self, *exc):  # type: ignore[no-untyped-def]
            self.fh.close()

        def fileno(self) -> int:
            return self.fh.fileno()

        def read(self, n: int) -> bytes:
            reads.append(n)
            if len(reads) == 3:
                raise OSError("the disk went away")
            return self.fh.read(n)

    monkeypatch.setattr(chunking, "open", lambda p, mode: Failing(real_open(p, mode)), raising=False)
    with pytest.raises(OSError, match="the disk went away"):
        chunking.digest_file(path, with_signature=True)
    assert not [t for t in threading.enumerate() if t.name == "ecosys-blake3"]
