"""Large received files written past the page cache: the bytes on disk are exactly those written,
whatever the sizes of the writes, and the writer falls back to the page cache where O_DIRECT is refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ecosys_core.sync import direct_io
from ecosys_core.sync.direct_io import BLOCK, DirectWriter, open_for_writing
from ecosys_core.sync.fsio import atomic_writer

SIZES = [0, 1, 4095, BLOCK - 1, BLOCK, BLOCK + 1, 3 * BLOCK + 12345]


@pytest.mark.parametrize("size", SIZES)
def test_the_file_holds_exactly_what_was_written_in_pieces_of_any_size(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "out.bin"
    with DirectWriter(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)) as out:
        done = 0
        for piece in (1, 7, 4096, BLOCK, 100_000):  # unaligned pieces straddling the blocks
            out.write(data[done:done + piece])
            done = min(size, done + piece)
        out.write(memoryview(data)[done:])
    assert path.read_bytes() == data


def test_where_o_direct_is_missing_the_writer_writes_through_the_page_cache(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(direct_io, "_O_DIRECT", 0)  # as on a system without it
    data = os.urandom(2 * BLOCK + 5)
    path = tmp_path / "out.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    with open_for_writing(fd, len(data)) as out:
        out.write(data)
    assert path.read_bytes() == data


@pytest.mark.skipif(not hasattr(os, "O_DIRECT"), reason="Linux only")
def test_a_file_system_that_refuses_direct_writes_still_gets_the_whole_file(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # Some file systems accept the flag and refuse the I/O (EINVAL); none of those can be mounted here,
    # so the refusal is made by wrapping os.write: any write with O_DIRECT set on the descriptor fails.
    import errno
    import fcntl

    real_write = os.write

    def refusing_write(fd: int, data) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_write(fd, data)

    monkeypatch.setattr(direct_io.os, "write", refusing_write)
    data = os.urandom(2 * BLOCK + 77)
    path = tmp_path / "out.bin"
    with DirectWriter(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)) as out:
        out.write(data)
    assert path.read_bytes() == data


def test_a_large_atomic_write_is_durable_and_whole_and_a_failed_one_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "big.bin"
    data = os.urandom(direct_io.DIRECT_MIN + 999)
    with atomic_writer(target, size=len(data)) as (out, temp):
        assert isinstance(out, DirectWriter)
        out.write(data)
    assert temp.read_bytes() == data
    with pytest.raises(RuntimeError):
        with atomic_writer(target, size=len(data)) as (out, temp2):
            out.write(data[:BLOCK + 3])
            raise RuntimeError("the delta failed")
    assert not temp2.exists()


def test_a_disk_error_in_the_writing_thread_reaches_the_caller_and_leaves_nothing(tmp_path: Path,
                                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # A full block is written by a helper thread while the next one fills; its error must still fail
    # the file. No disk can be made to fail here, so os.write fails from the second block on (ENOSPC).
    import errno

    real_write = os.write
    blocks: list[int] = []

    def failing_write(fd: int, data) -> int:
        blocks.append(len(data))
        if len(blocks) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(direct_io, "_set_direct", lambda fd, on: False)  # no fallback to try: the error stays
    monkeypatch.setattr(direct_io.os, "write", failing_write)
    target = tmp_path / "big.bin"
    with pytest.raises(OSError) as failed:
        with atomic_writer(target, size=direct_io.DIRECT_MIN) as (out, temp):
            assert isinstance(out, DirectWriter)
            for _ in range(8):
                out.write(os.urandom(BLOCK))
    assert failed.value.errno == errno.ENOSPC
    assert not temp.exists() and not target.exists()
    assert len(blocks) <= 3  # the writes stopped at the failed block and the one being filled
