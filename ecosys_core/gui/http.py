"""Just enough HTTP/1.1 for a dashboard on loopback: one request per connection, bodies by
Content-Length only, every size bounded before it is read. Malformed requests get a 400, never a
traceback."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_LINE = 8 << 10
MAX_HEADERS = 64
MAX_BODY = 1 << 20
REASONS = {200: "OK", 303: "See Other", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
           500: "Internal Server Error", 501: "Not Implemented"}
# no framing, no sniffing, no other origin's scripts, no referrer: a page that only talks to its daemon
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
                    "Cache-Control": "no-store"}


class BadRequest(Exception):
    """The request cannot be read; ``status`` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Request:
    """One parsed request: method, path, query parameters (first value each), lower-cased headers, body."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    cookies: dict[str, str] = field(default_factory=dict)
    length: int = 0  # of a body left to stream (see read_request)

    def json(self) -> Any:
        """The body as JSON (an empty body is ``{}``); BadRequest when it is not JSON."""
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError:
            raise BadRequest(400, "the body is not JSON") from None


async def read_request(reader: asyncio.StreamReader, streamed: tuple[str, ...] = ()) -> Request:
    """Read one request; BadRequest when it is malformed or too large. The body of a request whose path is
    one of ``streamed`` is left in ``reader`` (``length`` bytes, any size) for the route to stream."""
    line = await _line(reader)
    parts = line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest(400, "bad request line")
    method, target, _ = parts
    headers: dict[str, str] = {}
    for _ in range(MAX_HEADERS + 1):
        line = await _line(reader)
        if not line:
            break
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest(400, "bad header line")
        headers[name.lower()] = value.strip()
    else:
        raise BadRequest(400, "too many headers")
    if "transfer-encoding" in headers:
        raise BadRequest(501, "send bodies with Content-Length")
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError:
        raise BadRequest(400, "bad Content-Length") from None
    url = urlsplit(target)
    if not url.path.startswith("/"):
        raise BadRequest(400, "bad request target")
    stream = url.path in streamed
    if length < 0 or (length > MAX_BODY and not stream):
        raise BadRequest(413, "body too large")
    try:
        body = await reader.readexactly(length) if length and not stream else b""
    except asyncio.IncompleteReadError:
        raise BadRequest(400, "connection closed mid-body") from None
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    cookies = {}
    for item in headers.get("cookie", "").split(";"):
        name, sep, value = item.strip().partition("=")
        if sep:
            cookies[name] = value
    return Request(method, url.path, query, headers, body, cookies, length if stream else 0)


async def _line(reader: asyncio.StreamReader) -> str:
    try:
        raw = await reader.readuntil(b"\n")
    except asyncio.LimitOverrunError:
        raise BadRequest(400, "line too long") from None
    except asyncio.IncompleteReadError:
        raise BadRequest(400, "connection closed mid-request") from None
    try:
        return raw.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise BadRequest(400, "request head is not ASCII") from None


def response(status: int, body: bytes = b"", content_type: str = "application/json",
             headers: dict[str, str] | None = None) -> bytes:
    """A whole response, closing the connection after it."""
    head = {"Content-Type": content_type, "Content-Length": str(len(body)), "Connection": "close",
            **SECURITY_HEADERS, **(headers or {})}
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> bytes:
    """``data`` as a JSON response."""
    return response(status, json.dumps(data, default=str).encode(), headers=headers)


def error_response(status: int, message: str) -> bytes:
    """``{"error": message}`` with ``status``."""
    return json_response(status, {"error": message})


def event_stream_head() -> bytes:
    """The head of a server-sent events response (the connection stays open)."""
    head = {"Content-Type": "text/event-stream", "Connection": "keep-alive", **SECURITY_HEADERS}
    return ("HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in head.items()) + "\r\n").encode("latin-1")


def event(name: str, data: Any) -> bytes:
    """One server-sent event."""
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n".encode()
