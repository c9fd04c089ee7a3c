"""Mutual TLS between devices whose certificates are self-signed.

Before TLS each side sends its certificate in a short preamble; each then trusts exactly that one
certificate for this connection, so the TLS handshake proves the peer holds its key. The peer's device_id
is the SHA-256 of that certificate: the client refuses a server whose digest is not the id it dialled,
and the session refuses a HELLO whose device_id is not the digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
from typing import Awaitable, Callable, ClassVar

from .identity import Identity, cert_der, readable_id
from .protocol import Frame, ProtocolError, preamble, read_preamble
from .tls_socket import TLSSocketTransport, direct_tls_supported, handshake
from .wire import FrameProtocol

HANDSHAKE_TIMEOUT = 10.0


class Refused(Exception):
    """The peer is not who it should be."""


class Connection:
    """An authenticated connection: frames both ways, the peer's device_id and address."""

    def __init__(self, protocol: FrameProtocol, transport: asyncio.BaseTransport, peer_id: str, address: str,
                 raw: asyncio.BaseTransport | None = None) -> None:
        self._protocol = protocol
        self._transport = transport
        self._raw = raw  # the TCP transport under TLS
        self._closing = False
        self.peer_id = peer_id
        self.address = address

    async def read_frame(self) -> Frame:
        """The next frame (see :meth:`FrameProtocol.read_frame` for how the stream ends)."""
        return await self._protocol.read_frame()

    def write(self, data: bytes) -> None:
        """Queue encoded bytes for sending (see :meth:`drain`)."""
        self._transport.write(data)  # type: ignore[attr-defined]

    def writelines(self, frames: list[bytes]) -> None:
        """Queue encoded frames for sending, in order."""
        self._transport.writelines(frames)  # type: ignore[attr-defined]

    async def drain(self) -> None:
        """Wait until what was queued is mostly sent; ConnectionError once the connection is gone."""
        await self._protocol.drain()

    def at_eof(self) -> bool:
        """True once the peer ended the connection or it broke."""
        return self._protocol.at_eof()

    async def close(self) -> None:
        """Close the connection and wait (briefly) until it is gone; a connection that does not go in
        that time (TLS waiting for a goodbye the peer never sends) is cut, so nothing of it stays in
        memory. Closing twice is waiting twice: asyncio's TLS transport forgets its state on a second
        close, after which it could no longer be cut (it lingered 30 s, ~0.5 MiB each)."""
        if not self._closing:
            self._closing = True
            self._protocol.reading_for_close()
            self._transport.close()
        try:
            await asyncio.wait_for(self._protocol.closed(), 2)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass
        if not self._protocol.is_gone():
            (self._raw or self._transport).abort()


def _context(identity: Identity, peer_cert: bytes, *, server: bool) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(identity.cert_path, identity.key_path)
    try:
        ctx.load_verify_locations(cadata=peer_cert)
    except ssl.SSLError as exc:
        raise ProtocolError(f"peer certificate unusable: {exc}") from None
    return ctx


def _verified_peer(transport: asyncio.BaseTransport, announced: bytes) -> str:
    ssl_object = transport.get_extra_info("ssl_object")
    presented = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if presented != announced:
        raise Refused("the TLS certificate is not the one announced")
    return hashlib.sha256(presented).hexdigest()


async def listen(host: str, port: int, handler: Callable[[Incoming], Awaitable[None]]) -> asyncio.Server:
    """Serve ``host:port``: ``handler`` runs for each new TCP connection, which it passes to :func:`accept`."""
    return await asyncio.get_running_loop().create_server(lambda: Incoming(handler), host, port)


class Incoming(FrameProtocol):
    """A TCP connection accepted by :func:`listen`, not authenticated yet."""

    _running: ClassVar[set[asyncio.Task]] = set()  # the loop only keeps weak references to tasks

    def __init__(self, handler: Callable[[Incoming], Awaitable[None]]) -> None:
        super().__init__()
        self._handler = handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        task = asyncio.ensure_future(self._handler(self))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    def abort(self) -> None:
        """Drop the connection (after a refused handshake)."""
        if self.transport is not None:
            self.transport.close()


def _take_socket(raw: asyncio.BaseTransport, protocol: FrameProtocol) -> socket.socket:
    """The connected socket under ``raw``, taken over from asyncio for TLS on the socket itself
    (``tls_socket``): a duplicate of its descriptor; the raw transport is then dropped without a word
    to the peer. ProtocolError if the peer already sent more than its preamble."""
    raw.pause_reading()
    protocol.hand_over()
    taken = socket.socket(fileno=os.dup(raw.get_extra_info("socket").fileno()))
    raw.set_protocol(asyncio.Protocol())  # the raw side's end is not the connection's
    raw.abort()
    return taken


async def _tls_on_socket(sock: socket.socket, context: ssl.SSLContext, peer_cert: bytes, *, server_side: bool,
                         address: str, ours: bytes = b"") -> Connection:
    """Send ``ours`` (the server's preamble), then run TLS over ``sock`` ourselves (see ``tls_socket``)."""
    try:
        sock.setblocking(False)
        if ours:
            await asyncio.get_running_loop().sock_sendall(sock, ours)
        channel = await handshake(sock, context, server_side=server_side)
    except BaseException:
        sock.close()
        raise
    protocol = FrameProtocol()
    protocol.start_frames()
    transport = TLSSocketTransport(channel, protocol)
    try:
        return Connection(protocol, transport, _verified_peer(transport, peer_cert), address)
    except BaseException:
        transport.abort()
        raise


async def accept(incoming: Incoming, identity: Identity) -> Connection:
    """Server side of the handshake on a connection from :func:`listen`."""
    loop = asyncio.get_running_loop()
    raw = incoming.transport
    assert raw is not None
    peer_cert = await asyncio.wait_for(read_preamble(incoming), HANDSHAKE_TIMEOUT)
    if direct_tls_supported(loop):
        peer = raw.get_extra_info("peername")
        return await asyncio.wait_for(
            _tls_on_socket(_take_socket(raw, incoming), _context(identity, peer_cert, server=True), peer_cert,
                           server_side=True, address=f"{peer[0]}:{peer[1]}" if peer else "?",
                           ours=preamble(cert_der(identity.cert_path))), HANDSHAKE_TIMEOUT)
    # No await between sending our preamble and starting TLS: the client's first TLS bytes only come
    # after it has read the preamble, so none can arrive as raw bytes.
    raw.write(preamble(cert_der(identity.cert_path)))  # type: ignore[attr-defined]
    incoming.start_frames()
    tls = await asyncio.wait_for(loop.start_tls(raw, incoming, _context(identity, peer_cert, server=True),  # type: ignore[arg-type]
                                                server_side=True), HANDSHAKE_TIMEOUT)
    if tls is None:
        raise ConnectionError("connection closed during the TLS handshake")
    incoming.transport = tls
    peer = tls.get_extra_info("peername")
    return Connection(incoming, tls, _verified_peer(tls, peer_cert), f"{peer[0]}:{peer[1]}" if peer else "?", raw)


async def connect(host: str, port: int, identity: Identity, expected_id: str | None = None) -> Connection:
    """Dial ``host:port``; with ``expected_id``, refuse any other device."""
    loop = asyncio.get_running_loop()
    raw, protocol = await asyncio.wait_for(loop.create_connection(FrameProtocol, host, port), HANDSHAKE_TIMEOUT)
    try:
        raw.write(preamble(cert_der(identity.cert_path)))
        peer_cert = await asyncio.wait_for(read_preamble(protocol), HANDSHAKE_TIMEOUT)
        if expected_id is not None and hashlib.sha256(peer_cert).hexdigest() != expected_id:
            raise Refused(f"{host}:{port} is not device {readable_id(expected_id)}")
        if direct_tls_supported(loop):
            return await asyncio.wait_for(
                _tls_on_socket(_take_socket(raw, protocol), _context(identity, peer_cert, server=False), peer_cert,
                               server_side=False, address=f"{host}:{port}"), HANDSHAKE_TIMEOUT)
        protocol.start_frames()
        tls = await asyncio.wait_for(loop.start_tls(raw, protocol, _context(identity, peer_cert, server=False)),
                                     HANDSHAKE_TIMEOUT)
        if tls is None:
            raise ConnectionError("connection closed during the TLS handshake")
        protocol.transport = tls
        return Connection(protocol, tls, _verified_peer(tls, peer_cert), f"{host}:{port}", raw)
    except BaseException:
        raw.close()
        raise
