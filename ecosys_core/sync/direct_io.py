"""Large received files written past the page cache (Linux ``O_DIRECT``), in aligned blocks.

A received large file must be on disk before the rename that publishes it (fsync), and nothing reads it
soon after: going through the page cache only costs a copy into pages the kernel first has to find. On
the machines this project is measured on, that copy into fresh page-cache pages is most of what
receiving a large file costs the receiver (0.23-0.34 s of CPU per 128 MiB, against 0.01 s written
direct: docs/decisions.md, "Stop 29"). Where ``O_DIRECT`` is missing or refused (other systems, tmpfs,
some FUSE file systems) the same writer writes through the page cache; the bytes are the same.
"""

from __future__ import annotations

import fcntl
import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

DIRECT_MIN = 8 << 20  # smaller files are written as usual: the saving is per byte, the set-up is not
BLOCK = 1 << 20  # the aligned buffer: a multiple of any logical block size, page-aligned by mmap
_O_DIRECT = getattr(os, "O_DIRECT", 0)


class DirectWriter:
    """A write-only file over ``fd`` (opened for writing, empty, at offset 0) that writes whole
    ``BLOCK``-sized, page-aligned blocks with ``O_DIRECT`` set on the descriptor, and the last partial
    block with it cleared. Only ``write``, ``flush``, ``fileno`` and ``close`` are offered: what
    :func:`fsio.atomic_writer` and the delta decoder use.

    A full block is written by a helper thread while the caller fills the other buffer: a direct write
    returns only once the device has the block, and the caller (the thread rebuilding a received file)
    would otherwise wait for the disk on every block (docs/decisions.md, "Stop 31"). A write error is
    raised by the next ``write``, ``flush`` or ``close``."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffers = [mmap.mmap(-1, BLOCK) for _ in range(2)]
        self._views = [memoryview(buffer) for buffer in self._buffers]
        self._current = 0
        self._filled = 0
        self._direct = _set_direct(fd, True)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="ecosys-write")
        self._writing: Future[None] | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Take ``data`` (any size); full blocks go to the disk as they fill. Returns ``len(data)``."""
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            take = min(len(view) - done, BLOCK - self._filled)
            self._views[self._current][self._filled:self._filled + take] = view[done:done + take]
            self._filled += take
            done += take
            if self._filled == BLOCK:
                self._wait_for_writer()
                self._writing = self._writer.submit(self._write_out, self._current, BLOCK)
                self._current ^= 1
                self._filled = 0
        return done

    def _wait_for_writer(self) -> None:
        """Wait for the block being written (raising its error): its buffer is free again after it."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing.result()

    def _write_out(self, index: int, length: int) -> None:
        """Write the first ``length`` bytes of buffer ``index``. The views it makes are released even on
        error: the error's traceback would otherwise hold them, and the buffer could not be closed."""
        block = self._views[index][:length]
        try:
            written = 0
            while written < length:
                piece = block[written:]
                try:
                    written += os.write(self._fd, piece)
                except OSError:
                    if not self._direct:
                        raise
                    # refused at write time (some file systems accept the flag and not the I/O): the rest
                    # goes through the page cache, from where this block left off
                    self._direct = _set_direct(self._fd, False)
                    if self._direct:
                        raise
                finally:
                    piece.release()
        finally:
            block.release()

    def flush(self) -> None:
        """Write what is buffered (the file's unaligned tail), through the page cache: after it the
        file holds every byte written so far. Nothing more may be written after a partial block."""
        self._wait_for_writer()
        if self._filled:
            if self._direct:
                self._direct = _set_direct(self._fd, False)
            self._write_out(self._current, self._filled)
            self._filled = 0

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        """Flush, then close the descriptor and let go of the buffers and the helper thread."""
        try:
            self.flush()
        finally:  # the flush waited for the block being written, even when it failed
            self._writer.shutdown()
            for view, buffer in zip(self._views, self._buffers):
                view.release()
                buffer.close()
            os.close(self._fd)

    def __enter__(self) -> "DirectWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _set_direct(fd: int, on: bool) -> bool:
    """Set or clear ``O_DIRECT`` on ``fd``; whether it is set now (False where it cannot be)."""
    if not _O_DIRECT:
        return False
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags | _O_DIRECT if on else flags & ~_O_DIRECT)
    except OSError:
        return False
    return on


def open_for_writing(fd: int, size: int) -> BinaryIO:
    """A file object to write ``size`` new bytes into ``fd``: a :class:`DirectWriter` for large ones
    where ``O_DIRECT`` exists, a plain buffered file otherwise."""
    if size >= DIRECT_MIN and _O_DIRECT:
        return DirectWriter(fd)  # type: ignore[return-value]
    return os.fdopen(fd, "wb")
