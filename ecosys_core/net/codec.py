"""Sync engine messages ↔ frame headers (the delta of a modification travels in DATA frames after it)."""

from __future__ import annotations

from typing import Any

from ..sync.messages import Members, Message, Modification, ModificationDone, NeedState
from .protocol import ProtocolError


def message_header(message: Message, me: str) -> tuple[dict[str, Any], bytes]:
    """Header and payload of ``message`` sent by device ``me``. A modification whose delta is a single
    bytes block (see ``inline_delta``) carries it as its payload; otherwise ``more`` announces DATA frames."""
    if isinstance(message, Modification):
        inline = message.delta if isinstance(message.delta, bytes) else None
        return {
            "flag": "MODIFICATION", "device_id": me, "secure_id": message.secure_id, "path": message.path,
            "version": message.version, "hash": message.hash, "size": message.size,
            "modified_ns": message.modified_ns, "modified_by": message.modified_by, "deleted": message.deleted,
            "base_hash": message.base_hash, "reply": message.reply,
            "more": message.delta is not None and inline is None,
            **({"signed": True} if message.signed and inline is None else {}),
        }, inline or b""
    if isinstance(message, ModificationDone):
        return {"flag": "MODIFICATION_DONE", "device_id": me, "secure_id": message.secure_id,
                "path": message.path, "version": message.version}, b""
    if isinstance(message, Members):
        return {"flag": "MEMBERS", "device_id": me, "secure_id": message.secure_id, "members": message.members}, b""
    return {"flag": "NEED_STATE", "device_id": me, "secure_id": message.secure_id, "path": message.path,
            "have_hash": message.have_hash}, message.signature


def _need(header: dict[str, Any], *keys: str) -> None:
    missing = [k for k in keys if k not in header]
    if missing:
        raise ProtocolError(f"{header['flag']} without {', '.join(missing)}")


def header_message(header: dict[str, Any], payload: bytes) -> Message:
    """The engine message a frame carries (the delta, if any, is attached by the session)."""
    flag = header["flag"]
    if flag == "MODIFICATION":
        _need(header, "secure_id", "path", "version", "hash", "size", "modified_ns", "modified_by", "deleted")
        if payload and header.get("more"):
            raise ProtocolError("a modification carries its delta inline or in DATA frames, not both")
        return Modification(header["secure_id"], header["path"], header["version"], header["hash"], header["size"],
                            header["modified_ns"], header["modified_by"], header["deleted"],
                            header.get("base_hash", ""), [payload] if payload else None, header.get("reply", False),
                            bool(header.get("more") and header.get("signed")))
    if flag == "MODIFICATION_DONE":
        _need(header, "secure_id", "path", "version")
        return ModificationDone(header["secure_id"], header["path"], header["version"])
    if flag == "NEED_STATE":
        _need(header, "secure_id", "path", "have_hash")
        return NeedState(header["secure_id"], header["path"], header["have_hash"], payload)
    if flag == "MEMBERS":
        _need(header, "secure_id", "members")
        return Members(header["secure_id"], header["members"])
    raise ProtocolError(f"{flag} is not a sync message")


INLINE_MAX = 256 * 1024


def inline_delta(message: Message | None) -> Message | None:
    """Read a small modification's delta now (in the caller's thread), so it travels inside its frame:
    one frame and no stream for the thousands of small files of a tree."""
    if isinstance(message, Modification) and message.delta is not None and message.size <= INLINE_MAX:
        message.delta = b"".join(message.delta)
    return message
