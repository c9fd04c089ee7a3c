"""Ecosys wire frames (docs/PROTOCOL.md). Imports nothing else of Ecosys.

A frame is ``u32 length`` (big-endian, bytes after this field), ``u16 header length``, a UTF-8 JSON
object (the header: the seed's fields, typed), then the raw payload. Bytes are never encoded as text.
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
from typing import Any

# 2: largage carries file contents in manifest order, not a tar; 3: a whole content streamed in DATA
# frames may end with its chunk signature (MODIFICATION's ``signed``, the payload of the last DATA)
PROTOCOL_VERSIONS = (2, 3)
SIGNED_STREAMS = 3
MAX_HEADER = 64 * 1024
MAX_PAYLOAD = 4 * 1024 * 1024
MAX_FRAME = 2 + MAX_HEADER + MAX_PAYLOAD

FLAGS = frozenset({
    "HELLO", "PING", "ERROR",
    "LINK", "LINK_ACCEPTED", "LINK_REFUSED", "UNLINK",
    "SHARE", "SHARE_ACCEPTED", "SHARE_REFUSED", "SHARE_REVERSE", "SETUP_QUEUE",
    "MODIFICATION", "MODIFICATION_DONE", "NEED_STATE", "DATA", "MEMBERS", "INTRODUCE", "RESEND",
    "OTDL", "MOTDL", "OFFER_ACCEPTED", "OFFER_REFUSED", "OFFER_DONE", "CANCEL", "ALERT_USER",
})
# Header fields and the JSON types they may have; anything else is refused.
FIELDS: dict[str, tuple[type, ...]] = {
    "flag": (str,), "device_id": (str,), "secure_id": (str,), "file_type": (str,), "path": (str,),
    "new_path": (str,), "name": (str,), "kind": (str,), "source": (str,), "created_at": (str,),
    "versions": (list,), "version": (dict,), "protocol": (int,), "port": (int,),
    "hash": (str,), "base_hash": (str,), "have_hash": (str,), "size": (int,), "modified_ns": (int,),
    "modified_by": (str,), "deleted": (bool,), "reply": (bool,), "more": (bool,), "end": (bool,), "signed": (bool,),
    "files": (list,), "members": (list,), "devices": (list,), "introducer": (bool,), "total": (int,), "offer_id": (str,), "error": (str,), "message": (str,),
}
# Ranges of integer fields (docs/PROTOCOL.md, "Limits"): checked here, at the frame boundary, so a value
# the store or the file system cannot hold never reaches them.
INT_RANGES: dict[str, tuple[int, int]] = {
    "size": (0, 2**63 - 1), "modified_ns": (0, 2**63 - 1), "total": (0, 2**63 - 1),
    "port": (0, 65535), "protocol": (0, 2**16 - 1),
}
MAX_COUNTER = 2**53 - 1  # version counters: exact in every JSON implementation
MAX_VERSION_ENTRIES = 1024
MAX_LIST = 256  # items of a list field (HELLO's versions, files, members, devices)
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
PREAMBLE_MAGIC = b"ECOSYS1\n"
MAX_CERT = 16 * 1024


class ProtocolError(Exception):
    """A frame or preamble that does not follow the protocol; the connection is closed."""


class Frame:
    """One decoded frame. A large payload may be held as the buffers it was received in (``parts``):
    :attr:`payload` joins them when first asked, :meth:`blocks` gives them as they are (a 1 MiB DATA
    frame's join was a third of the receiver's event-loop time under the GIL, docs/decisions.md)."""

    __slots__ = ("header", "_payload", "_parts", "size")

    def __init__(self, header: dict[str, Any], payload: bytes = b"",
                 parts: tuple[bytes | bytearray, ...] = ()) -> None:
        self.header = header
        self._payload: bytes | None = None if parts else payload
        self._parts = parts
        self.size = sum(map(len, parts)) if parts else len(payload)  # the payload's length

    @property
    def payload(self) -> bytes:
        """The whole payload as one bytes object (its buffers joined once, on the first call)."""
        if self._payload is None:
            self._payload, self._parts = b"".join(self._parts), ()
        return self._payload

    def blocks(self) -> tuple[bytes | bytearray, ...]:
        """The payload as one or more buffers, end to end, without joining them (none when empty)."""
        if self._payload is None:
            return self._parts
        return (self._payload,) if self._payload else ()

    @property
    def flag(self) -> str:
        return self.header["flag"]

    def __repr__(self) -> str:
        return f"Frame({self.header!r}, <{self.size} bytes>)"


def check_header(header: Any) -> dict[str, Any]:
    """Return ``header`` if it is a well-typed header, else raise ProtocolError."""
    if not isinstance(header, dict):
        raise ProtocolError("header is not a JSON object")
    for key, value in header.items():
        types = FIELDS.get(key)
        if types is None:
            raise ProtocolError(f"unknown header field {key!r}")
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ProtocolError(f"header field {key!r} has the wrong type")
        if isinstance(value, str) and ("\x00" in value or len(value) > 4096):
            raise ProtocolError(f"header field {key!r} is not acceptable text")
    if header.get("flag") not in FLAGS:
        raise ProtocolError(f"unknown flag {str(header.get('flag'))[:40]!r}")
    device = header.get("device_id")
    if not isinstance(device, str) or not _HEX64.match(device):
        raise ProtocolError("device_id must be 64 hex digits")
    version = header.get("version")
    if version is not None and (len(version) > MAX_VERSION_ENTRIES or not all(
            isinstance(k, str) and 0 < len(k) <= 64 and type(v) is int and 0 <= v <= MAX_COUNTER
            for k, v in version.items())):
        raise ProtocolError(f"version must map at most {MAX_VERSION_ENTRIES} device keys to counters "
                            f"from 0 to {MAX_COUNTER}")
    for key, (low, high) in INT_RANGES.items():
        if key in header and not low <= header[key] <= high:
            raise ProtocolError(f"{key} must be from {low} to {high}")
    for key in ("versions", "files", "members", "devices"):
        if key in header and len(header[key]) > MAX_LIST:
            raise ProtocolError(f"{key} has more than {MAX_LIST} items")
    return header


def encode_frame(header: dict[str, Any], payload: bytes = b"") -> bytes:
    """Encode one frame (the header is checked too, so we never send what we would refuse)."""
    return frame_head(header, len(payload)) + payload


def frame_head(header: dict[str, Any], payload_size: int) -> bytes:
    """What comes before a payload of ``payload_size`` bytes in a frame: :func:`encode_frame` without
    the payload, for a sender that writes a large payload after it as it is, not copied behind it."""
    raw = json.dumps(check_header(header), separators=(",", ":"), ensure_ascii=False).encode()
    if len(raw) > MAX_HEADER or payload_size > MAX_PAYLOAD:
        raise ProtocolError("frame too large")
    return struct.pack(">IH", 2 + len(raw) + payload_size, len(raw)) + raw


def decode_frame(body: bytes) -> Frame:
    """Decode a frame body (what follows the u32 length)."""
    if len(body) < 2:
        raise ProtocolError("truncated frame")
    (hlen,) = struct.unpack(">H", body[:2])
    if hlen > len(body) - 2:
        raise ProtocolError("header longer than the frame")
    try:
        header = json.loads(body[2: 2 + hlen].decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, a 5,000-digit number, deep nesting
        raise ProtocolError(f"header is not acceptable JSON: {str(exc)[:100]}") from None
    payload = body[2 + hlen:]
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError("payload too large")
    return Frame(check_header(header), payload)


async def read_frame(reader: asyncio.StreamReader) -> Frame:
    """Read one frame from an asyncio stream; raise ProtocolError for a malformed one and
    IncompleteReadError at end of stream. (Connections read theirs through ``wire.FrameProtocol``.)"""
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    if length < 2 or length > MAX_FRAME:
        raise ProtocolError(f"frame length {length} out of bounds")
    return decode_frame(await reader.readexactly(length))


def preamble(cert_der: bytes) -> bytes:
    """What each side sends before TLS starts: the magic and its certificate (DER)."""
    return PREAMBLE_MAGIC + struct.pack(">I", len(cert_der)) + cert_der


async def read_preamble(reader: asyncio.StreamReader | Any) -> bytes:
    """Read the peer's preamble (from anything with an awaitable ``readexactly``) and return its
    certificate (DER)."""
    if await reader.readexactly(len(PREAMBLE_MAGIC)) != PREAMBLE_MAGIC:
        raise ProtocolError("not an Ecosys peer")
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    if not 0 < length <= MAX_CERT:
        raise ProtocolError("certificate size out of bounds")
    return await reader.readexactly(length)
