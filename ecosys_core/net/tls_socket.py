"""TLS over a socket we read and write ourselves: large reads, and nothing moved twice in the buffers.

asyncio's own TLS transport (``loop.start_tls``, Python 3.11) queues what it sends in one ``bytearray``
and deletes each sent part from its front, moving the rest down every time: a 1 MiB frame that leaves
in 64 KiB pieces is moved some 16 times over. On this machine, where touching memory is what costs,
that made the sender of a 512 MiB stream spend 0.85-0.93 s of CPU in TLS alone, against 0.35 s for the
encryption itself (docs/decisions.md, "Stop 30"). Here OpenSSL still works on memory buffers (an
:class:`ssl.SSLObject`), but what it encrypts goes out as it is, in order, each piece a view into the
bytes OpenSSL gave; and what comes in is read 128 KiB per system call, then decrypted straight into the
buffer the protocol hands out (:class:`wire.FrameProtocol` puts a large payload's bytes where they will
stay). A ``SSLSocket`` would have spared a copy each way, but OpenSSL then reads each 16 KiB record in
two system calls, and the receiver paid more than it saved.

Only the event loop's thread touches the TLS object. Needs a selector event loop (``add_reader``);
:func:`direct_tls_supported` says whether this one is.
"""

from __future__ import annotations

import asyncio
import collections
import mmap
import socket
import ssl
from dataclasses import dataclass
from typing import Any

HIGH_WATER = 512 * 1024  # encrypted bytes waiting for the socket before the protocol is asked to pause writing
LOW_WATER = 128 * 1024
RECEIVE = 256 * 1024  # bytes read from the socket at a time
PIECE = 64 * 1024  # bytes encrypted at a time: OpenSSL's buffer and each piece taken from it stay small (reused, not faulted in)
COALESCE = 16 * 1024  # small frames written together are encrypted as runs of at least this (one TLS record each)


def direct_tls_supported(loop: asyncio.AbstractEventLoop) -> bool:
    """True when ``loop`` can watch a socket's readiness (a selector loop: Linux, macOS); Windows'
    proactor loop cannot, and keeps asyncio's own TLS."""
    return isinstance(loop, asyncio.SelectorEventLoop)


@dataclass
class TLSChannel:
    """A connected non-blocking socket and the TLS state over it, once the handshake is done."""

    sock: socket.socket
    tls: ssl.SSLObject
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO


async def handshake(sock: socket.socket, context: ssl.SSLContext, *, server_side: bool) -> TLSChannel:
    """Run the TLS handshake over the connected ``sock`` without blocking the loop; the caller bounds the
    time and closes ``sock`` if this fails (ssl.SSLError, or ConnectionError when the peer hangs up)."""
    loop = asyncio.get_running_loop()
    sock.setblocking(False)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_side=server_side)
    scratch = bytearray(16 * 1024)
    while True:
        try:
            tls.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        if outgoing.pending:
            await loop.sock_sendall(sock, outgoing.read())
        if done:
            return TLSChannel(sock, tls, incoming, outgoing)
        count = await loop.sock_recv_into(sock, scratch)
        if not count:
            raise ConnectionError("the peer hung up during the TLS handshake")
        incoming.write(memoryview(scratch)[:count])


class TLSSocketTransport(asyncio.Transport):
    """An asyncio transport over a :class:`TLSChannel`, for a buffered protocol.

    Writes are encrypted at once and sent as far as the socket takes them; the rest waits, in order, and
    the protocol is paused above ``HIGH_WATER``. :meth:`close` sends what waits, then TLS's close_notify
    and the end of the stream, and waits (dropping what still comes) until the peer ends too, so nothing
    we sent is lost to a reset; the owner bounds that wait and calls :meth:`abort` after it.
    """

    def __init__(self, channel: TLSChannel, protocol: asyncio.BufferedProtocol) -> None:
        super().__init__()
        self._loop = asyncio.get_running_loop()
        self._sock: socket.socket | None = channel.sock
        self._tls: ssl.SSLObject | None = channel.tls
        self._incoming = channel.incoming
        self._outgoing = channel.outgoing
        self._fd = channel.sock.fileno()
        self._protocol = protocol
        self._extra: dict[str, Any] = {"socket": channel.sock, "ssl_object": channel.tls}
        try:
            self._extra["peername"] = channel.sock.getpeername()
            self._extra["sockname"] = channel.sock.getsockname()
        except OSError:
            pass
        if channel.sock.family in (socket.AF_INET, socket.AF_INET6):
            channel.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # frames go out as written, as asyncio's do
        # An anonymous mapping: its pages are only resident once bytes arrived in them (an idle
        # connection's small frames touch one or two), and they go back to the system at close.
        self._scratch: mmap.mmap | None = mmap.mmap(-1, RECEIVE)
        self._pending: collections.deque[memoryview] = collections.deque()
        self._pending_size = 0
        self._writing = False  # the writer callback is registered
        self._read_paused = False
        self._closing = False
        self._goodbye = False  # close_notify and the end of the stream are queued: only dropping reads now
        self._lost = False
        self._writing_paused = False
        protocol.connection_made(self)
        self._loop.add_reader(self._fd, self._read_ready)
        if self._incoming.pending:  # records that came with the handshake's last flight
            self._loop.call_soon(self._decrypt)

    # -- asyncio.Transport -------------------------------------------------------------------------
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]

    def is_reading(self) -> bool:
        return not self._read_paused and not self._lost

    def pause_reading(self) -> None:
        if self._read_paused or self._closing or self._lost:
            return
        self._read_paused = True
        self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._read_paused or self._closing or self._lost:
            return
        self._read_paused = False
        self._loop.add_reader(self._fd, self._read_ready)
        self._loop.call_soon(self._decrypt)  # records read before the pause wait in OpenSSL's buffer

    def get_write_buffer_size(self) -> int:
        return self._pending_size

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return LOW_WATER, HIGH_WATER

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Encrypt ``data`` and send it as far as the socket takes it now; keep the rest, in order."""
        view = memoryview(data).cast("B")
        for start in range(0, len(view), PIECE):
            if not self._encrypt(view[start:start + PIECE]):
                return
            self._send_encrypted()

    def writelines(self, list_of_data: Any) -> None:
        """Encrypt each item in order and send them together; runs of small ones are joined first, so
        a group of thousands of small frames is few TLS records, not one each."""
        run = bytearray()
        for data in list_of_data:
            if len(data) >= COALESCE:
                if run and not self._encrypt(run):
                    return
                run = bytearray()
                self._send_encrypted()
                self.write(data)
                continue
            run += data
            if len(run) >= COALESCE:
                if not self._encrypt(run):
                    return
                run = bytearray()
        if run and not self._encrypt(run):
            return
        self._send_encrypted()

    def can_write_eof(self) -> bool:
        return False

    def write_eof(self) -> None:
        raise NotImplementedError("TLS cannot half-close")

    def close(self) -> None:
        """Send what waits, then say goodbye; the connection is lost once the peer ends too (or
        :meth:`abort` cuts it)."""
        if self._closing or self._lost:
            return
        self._closing = True
        if not self._read_paused:
            self._loop.remove_reader(self._fd)
        tls = self._tls
        if tls is not None:
            try:
                tls.unwrap()  # queues close_notify; the peer's comes later
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except (ssl.SSLError, ValueError):
                pass
        self._goodbye = True
        self._send_encrypted()

    def abort(self) -> None:
        """Close the socket now, dropping what was not sent."""
        self._lose(None)

    # -- reading -----------------------------------------------------------------------------------
    def _read_ready(self) -> None:
        if self._lost or self._read_paused:
            return
        sock, scratch = self._sock, self._scratch
        assert sock is not None and scratch is not None
        try:
            count = sock.recv_into(scratch)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lose(exc)
            return
        if self._goodbye:  # closing: only the peer's end matters now
            if not count:
                self._lose(None)
            return
        if count:
            self._incoming.write(memoryview(scratch)[:count])
        else:
            self._incoming.write_eof()
        self._decrypt()

    def _decrypt(self) -> None:
        """Hand the protocol what the records received so far hold, buffer by buffer: one decrypt call
        per 16 KiB record, one protocol callback per buffer."""
        tls = self._tls
        while tls is not None and not self._read_paused and not self._closing and not self._lost:
            buffer = self._protocol.get_buffer(-1)
            size, filled, ended, error = len(buffer), 0, False, None
            try:
                while filled < size:
                    count = tls.read(size - filled, buffer[filled:])
                    if not count:
                        ended = True
                        break
                    filled += count
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                ended = True
            except ssl.SSLError as exc:
                error = exc
            if filled:
                self._protocol.buffer_updated(filled)
            if self._outgoing.pending:  # what OpenSSL answers while reading (a key update)
                self._send_encrypted()
            if error is not None:
                self._lose(error)
                return
            if ended:
                self._peer_ended()
                return
            if filled < size:
                return

    def _peer_ended(self) -> None:
        self._read_paused = True
        self._loop.remove_reader(self._fd)
        try:
            keep_open = self._protocol.eof_received()
        except Exception as exc:  # the protocol's fault: end the connection, not the loop
            self._lose(exc)
            return
        if not keep_open:
            self.close()

    # -- writing -----------------------------------------------------------------------------------
    def _encrypt(self, data: bytes | bytearray | memoryview) -> bool:
        """Encrypt ``data`` into the outgoing buffer; False once the connection is closing or lost."""
        if self._closing or self._lost or self._tls is None:
            return False
        try:
            self._tls.write(data)
        except ssl.SSLError as exc:
            self._lose(exc)
            return False
        return True

    def _send_encrypted(self) -> None:
        """Queue what OpenSSL encrypted, then send as much as the socket takes."""
        if self._lost:
            return
        if self._outgoing.pending:
            data = memoryview(self._outgoing.read())
            self._pending.append(data)
            self._pending_size += len(data)
        if not self._writing:
            self._write_ready()
            if self._pending and not self._lost:
                self._writing = True
                self._loop.add_writer(self._fd, self._write_ready)
        if not self._lost and self._pending_size > HIGH_WATER and not self._writing_paused:
            self._writing_paused = True
            self._protocol.pause_writing()

    def _write_ready(self) -> None:
        sock = self._sock
        if sock is None:
            return
        while self._pending:
            head = self._pending[0]
            try:
                sent = sock.send(head)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self._lose(exc)
                return
            self._pending_size -= sent
            if sent < len(head):
                self._pending[0] = head[sent:]
                break
            self._pending.popleft()
        if self._pending:
            return
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        if self._writing_paused and self._pending_size <= LOW_WATER:
            self._writing_paused = False
            self._protocol.resume_writing()
        if self._goodbye and not self._lost:
            self._said_goodbye()

    # -- ending ------------------------------------------------------------------------------------
    def _said_goodbye(self) -> None:
        """Everything, close_notify included, is sent: end our side, then drop what comes until the peer's end."""
        sock = self._sock
        assert sock is not None
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._lose(None)
            return
        self._read_paused = False
        self._loop.add_reader(self._fd, self._read_ready)

    def _lose(self, exc: BaseException | None) -> None:
        """Close the socket and tell the protocol, once."""
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._loop.remove_reader(self._fd)
        if self._writing:
            self._loop.remove_writer(self._fd)
        self._pending.clear()
        self._pending_size = 0
        scratch, self._scratch = self._scratch, None
        if scratch is not None:
            try:
                scratch.close()
            except BufferError:  # a view of it still alive: it goes with the view
                pass
        self._tls = None  # OpenSSL's own buffers go with it
        sock, self._sock = self._sock, None
        self._extra.pop("socket", None)
        self._extra.pop("ssl_object", None)
        if sock is not None:
            sock.close()
        self._loop.call_soon(self._protocol.connection_lost, exc)
