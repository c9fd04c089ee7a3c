"""Mutual TLS between devices whose certificates are self-signed.

Before TLS each side sends its certificate in a short preamble; each then trusts exactly that one
certificate for this connection, so the TLS handshake proves the peer holds its key. The peer's device_id
is the SHA-256 of that certificate: the client refuses a server whose digest is not the id it dialled,
and the session refuses a HELLO whose device_id is not the digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .identity import Identity
from .protocol import ProtocolError, preamble, read_preamble

HANDSHAKE_TIMEOUT = 10.0


class Refused(Exception):
    """The peer is not who it should be."""


@dataclass
class Connection:
    """An authenticated connection: streams, the peer's device_id and address."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer_id: str
    address: str

    async def close(self) -> None:
        self.writer.close()
        try:
            await asyncio.wait_for(self.writer.wait_closed(), 2)
        except (OSError, asyncio.TimeoutError, ssl.SSLError):
            pass


def _cert_der(identity: Identity) -> bytes:
    cert = x509.load_pem_x509_certificate(identity.cert_path.read_bytes())
    return cert.public_bytes(serialization.Encoding.DER)


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


def _verified_peer(writer: asyncio.StreamWriter, announced: bytes) -> str:
    ssl_object = writer.get_extra_info("ssl_object")
    presented = ssl_object.getpeercert(binary_form=True) if ssl_object else None
    if presented != announced:
        raise Refused("the TLS certificate is not the one announced")
    return hashlib.sha256(presented).hexdigest()


async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, identity: Identity) -> Connection:
    """Server side of the handshake on a fresh TCP connection."""
    peer_cert = await asyncio.wait_for(read_preamble(reader), HANDSHAKE_TIMEOUT)
    writer.write(preamble(_cert_der(identity)))
    await writer.drain()
    await asyncio.wait_for(writer.start_tls(_context(identity, peer_cert, server=True)), HANDSHAKE_TIMEOUT)
    peer = writer.get_extra_info("peername")
    return Connection(reader, writer, _verified_peer(writer, peer_cert), f"{peer[0]}:{peer[1]}" if peer else "?")


async def connect(host: str, port: int, identity: Identity, expected_id: str | None = None) -> Connection:
    """Dial ``host:port``; with ``expected_id``, refuse any other device."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), HANDSHAKE_TIMEOUT)
    try:
        writer.write(preamble(_cert_der(identity)))
        await writer.drain()
        peer_cert = await asyncio.wait_for(read_preamble(reader), HANDSHAKE_TIMEOUT)
        if expected_id is not None and hashlib.sha256(peer_cert).hexdigest() != expected_id:
            raise Refused(f"{host}:{port} is not device {expected_id[:12]}…")
        await asyncio.wait_for(writer.start_tls(_context(identity, peer_cert, server=False)), HANDSHAKE_TIMEOUT)
        return Connection(reader, writer, _verified_peer(writer, peer_cert), f"{host}:{port}")
    except BaseException:
        writer.close()
        raise
