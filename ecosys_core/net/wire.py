"""Frames off the socket with as few copies as TLS allows: an asyncio buffered protocol.

asyncio's streams copy each received byte three or four times (TLS record → StreamReader buffer →
``readexactly`` → the payload slice) and pause and resume the socket every 128 KiB; on this machine that
capped what one process could receive at ~350 MB/s of 1 MiB frames, below what the sync engine could
write. Here TLS decrypts small frames into one scratch buffer, parsed in place, and a large payload
straight into its own buffer (docs/decisions.md, "Frames are read by an asyncio buffered protocol").
The same protocol carries the plaintext preamble before TLS starts (:meth:`FrameProtocol.readexactly`).
"""

from __future__ import annotations

import asyncio
import collections
import json
import struct
from typing import Any

from ..malloc_arenas import give_back_soon
from .protocol import MAX_FRAME, MAX_PAYLOAD, Frame, ProtocolError, check_header

SCRATCH = 256 * 1024  # holds many small frames, or a frame's head (u32 + u16 + header ≤ 64 KiB)
DIRECT = 64 * 1024  # payloads larger than this are decrypted straight into their own buffers
PIECE = 256 * 1024  # such a payload's buffers, allocated as its bytes arrive (never for bytes only announced)
QUEUE_HIGH = 2 << 20  # bytes of frames waiting for the reader before the socket is paused
QUEUE_LOW = 1 << 20
_HEAD = struct.Struct(">IH")


class _Ended:
    """Marks the end of the stream in the frame queue (after the frames that came before it)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class FrameProtocol(asyncio.BufferedProtocol):
    """One connection's bytes: raw until :meth:`start_frames`, then decoded frames, in order.

    Flow control both ways: reading pauses while more than ``QUEUE_HIGH`` bytes of frames wait for
    :meth:`read_frame`; :meth:`drain` waits while the transport's write buffer is over its limit.
    A malformed frame ends the stream: :meth:`read_frame` raises ProtocolError after the frames before it.
    """

    def __init__(self) -> None:
        self.transport: asyncio.BaseTransport | None = None
        self._scratch = bytearray(SCRATCH)
        self._start = self._end = 0  # unparsed bytes are _scratch[_start:_end]
        self._payload: list[bytearray] | None = None  # a large payload being filled in place, piece by piece
        self._payload_size = 0  # its announced size
        self._filled = 0  # bytes of it received
        self._in_piece = 0  # of which in its last piece
        self._header: dict[str, Any] = {}
        self._framing = False
        self._frames: collections.deque[Frame | _Ended] = collections.deque()
        self._queued = 0
        self._ended = False
        self._reading_paused = False
        self._wakeup: asyncio.Future[None] | None = None
        self._writing_paused = False
        self._drainers: list[asyncio.Future[None]] = []
        self._lost: asyncio.Future[None] | None = None

    # -- asyncio callbacks -----------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._lost = asyncio.get_running_loop().create_future()

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._payload is not None:
            piece = self._payload[-1]
            if self._in_piece == len(piece):
                piece = bytearray(min(PIECE, self._payload_size - self._filled))
                self._payload.append(piece)
                self._in_piece = 0
            return memoryview(piece)[self._in_piece:]
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._scratch) - self._end < DIRECT:
            kept = self._end - self._start
            self._scratch[:kept] = self._scratch[self._start:self._end]
            self._start, self._end = 0, kept
        if self._end == len(self._scratch):  # raw bytes nobody reads: only a hostile peer sends those
            self._fail(ProtocolError("too many bytes before TLS"))
            self._start = self._end = 0
        return memoryview(self._scratch)[self._end:]

    def buffer_updated(self, nbytes: int) -> None:
        if self._ended:
            self._start = self._end = 0
            return
        if self._payload is not None:
            self._filled += nbytes
            self._in_piece += nbytes
            if self._filled == self._payload_size:
                pieces, self._payload = self._payload, None
                self._deliver(Frame(self._header, parts=tuple(pieces)))
            return
        self._end += nbytes
        if self._framing:
            try:
                self._parse()
            except ProtocolError as exc:
                self._fail(exc)
        else:
            self._wake()

    def eof_received(self) -> bool:
        self._finish(None)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(ConnectionError(str(exc)) if exc else None)
        # Let go of the buffers and the TLS transport (with its own 256 KiB buffer) now: whoever still
        # holds this protocol (a session, until the cycle collector gets to it) holds only a husk.
        self._scratch = bytearray(0)
        self._payload = None
        self.transport = None
        self._writing_paused = False
        for waiter in self._drainers:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("connection lost"))
        self._drainers.clear()
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)
        give_back_soon(asyncio.get_running_loop())  # what it held lies between objects that stay

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        for waiter in self._drainers:
            if not waiter.done():
                waiter.set_result(None)
        self._drainers.clear()

    # -- parsing -----------------------------------------------------------------------------------
    def _parse(self) -> None:
        """Deliver every complete frame in the scratch buffer; start filling a large payload in place."""
        s = self._scratch
        while self._end - self._start >= _HEAD.size:
            length, hlen = _HEAD.unpack_from(s, self._start)
            if length < 2 or length > MAX_FRAME:
                raise ProtocolError(f"frame length {length} out of bounds")
            if hlen > length - 2:
                raise ProtocolError("header longer than the frame")
            size = length - 2 - hlen
            if size > MAX_PAYLOAD:
                raise ProtocolError("payload too large")
            head_end = self._start + _HEAD.size + hlen
            available = self._end - self._start - 4
            if available >= length:
                header = _decode_header(s, self._start + _HEAD.size, head_end)
                self._start = head_end + size
                self._deliver(Frame(header, bytes(s[head_end:self._start])))
            elif size > DIRECT and self._end >= head_end:
                self._header = _decode_header(s, self._start + _HEAD.size, head_end)
                self._filled = self._end - head_end
                first = bytearray(max(self._filled, min(PIECE, size)))
                first[:self._filled] = s[head_end:self._end]
                self._payload, self._payload_size, self._in_piece = [first], size, self._filled
                self._start = self._end = 0
                return
            else:
                return

    def _deliver(self, frame: Frame) -> None:
        self._frames.append(frame)
        self._queued += frame.size + 64
        if self._queued > QUEUE_HIGH and not self._reading_paused and self.transport is not None:
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[attr-defined]
        self._wake()

    def _fail(self, exc: BaseException) -> None:
        self._finish(exc)
        if self.transport is not None and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[attr-defined]

    def _finish(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self._frames.append(_Ended(_bare(error) if error is not None else None))
            self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _wait(self) -> None:
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            await self._wakeup
        finally:
            self._wakeup = None

    # -- for the connection ------------------------------------------------------------------------
    async def readexactly(self, n: int) -> bytes:
        """(Before :meth:`start_frames`.) The next ``n`` raw bytes; IncompleteReadError at the end."""
        while self._end - self._start < n:
            if self._ended:
                raise asyncio.IncompleteReadError(bytes(self._scratch[self._start:self._end]), n)
            await self._wait()
        data = bytes(self._scratch[self._start:self._start + n])
        self._start += n
        return data

    def hand_over(self) -> None:
        """(Before :meth:`start_frames`.) The socket goes to another transport (``tls_socket``) with
        another protocol: let go of the buffers. ProtocolError if raw bytes are left unread (the peer
        sent more than its preamble before it was answered)."""
        if self._end != self._start:
            raise ProtocolError("unexpected bytes before TLS")
        self._scratch = bytearray(0)
        self._start = self._end = 0
        self._ended = True

    def start_frames(self) -> None:
        """From now on the bytes received are frames (TLS has started; nothing raw may be left)."""
        if self._end != self._start:
            raise ProtocolError("unexpected bytes before TLS")
        self._framing = True

    async def read_frame(self) -> Frame:
        """The next frame. Raises ProtocolError for a malformed one (the stream ends there),
        IncompleteReadError at the end of the stream, ConnectionError when the connection broke."""
        while not self._frames:
            await self._wait()
        item = self._frames[0]
        if isinstance(item, _Ended):
            if item.error is not None:
                # A copy each time: raised, the kept one would get this frame in its traceback, and the
                # protocol holding it would make a cycle that keeps the connection's buffers alive.
                raise _copy(item.error)
            raise asyncio.IncompleteReadError(b"", None)
        self._frames.popleft()
        self._queued -= item.size + 64
        if self._reading_paused and self._queued < QUEUE_LOW and not self._ended and self.transport is not None:
            self._reading_paused = False
            self.transport.resume_reading()  # type: ignore[attr-defined]
        return item

    def at_eof(self) -> bool:
        """True once the peer ended the stream or the connection broke."""
        return self._ended

    async def drain(self) -> None:
        """Wait until the transport's write buffer is under its limit; ConnectionError if it closed."""
        if self.transport is None or self.transport.is_closing() or (self._lost is not None and self._lost.done()):
            raise ConnectionResetError("connection closed")
        if self._writing_paused:
            waiter = asyncio.get_running_loop().create_future()
            self._drainers.append(waiter)
            await waiter

    def reading_for_close(self) -> None:
        """Read again if a malformed frame paused reading: closing TLS needs the peer's goodbye, and a
        paused connection would never see it (it stayed in memory, ~0.5 MiB each)."""
        if self._reading_paused and self.transport is not None and not self.transport.is_closing():
            self._reading_paused = False
            self.transport.resume_reading()  # type: ignore[attr-defined]

    def is_gone(self) -> bool:
        """True once the connection was lost."""
        return self._lost is not None and self._lost.done()

    async def closed(self) -> None:
        """Wait until the connection is gone."""
        if self._lost is not None:
            await asyncio.shield(self._lost)


def _bare(error: BaseException) -> BaseException:
    """``error`` without its traceback or the exception it was raised from: kept by the protocol, those
    would hold the frames that held the protocol (a cycle keeping the connection's buffers alive)."""
    error.__context__ = error.__cause__ = None
    return error.with_traceback(None)


def _copy(error: BaseException) -> BaseException:
    """A new exception like ``error`` (same type and arguments), with no traceback."""
    try:
        return type(error)(*error.args)
    except TypeError:  # an exception type whose arguments cannot be given back
        return ConnectionError(str(error))


def _decode_header(buffer: bytearray, start: int, end: int) -> dict[str, Any]:
    try:
        header = json.loads(buffer[start:end].decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 5,000-digit number, deep nesting
        raise ProtocolError(f"header is not acceptable JSON: {str(exc)[:100]}") from None
    return check_header(header)
