"""The local control channel between the CLI and a running daemon.

The daemon listens on 127.0.0.1 only, on a free port, and writes ``ECOSYS_HOME/daemon.json`` (port, token,
pid; readable by the owner only). A request is one JSON line ``{"token", "cmd", "args"}``; the answer is
one JSON line ``{"ok": true, "result": …}`` or ``{"ok": false, "error": "…"}``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import secrets
import socket
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..errors import EcosysError

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]
MAX_REQUEST = 1 << 20


class DaemonNotRunning(EcosysError):
    """No daemon answers for this ECOSYS_HOME."""


class ControlServer:
    """Serves control requests with ``handler(cmd, args)``; errors become ``{"ok": false}``."""

    def __init__(self, state_file: Path, handler: Handler, extra: dict[str, Any] | None = None) -> None:
        self.state_file = state_file
        self.handler = handler
        self.extra = extra or {}  # more for daemon.json (the dashboard's address)
        self.token = secrets.token_hex(16)
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, limit=MAX_REQUEST)
        port = self._server.sockets[0].getsockname()[1]
        tmp = self.state_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({**self.extra, "port": port, "token": self.token, "pid": os.getpid()}, fh)
        os.replace(tmp, self.state_file)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        try:
            if json.loads(self.state_file.read_text()).get("token") == self.token:
                self.state_file.unlink()
        except (OSError, ValueError):
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            request = json.loads(line)
            if not isinstance(request, dict) or not hmac.compare_digest(str(request.get("token", "")), self.token):
                answer: dict[str, Any] = {"ok": False, "error": "bad control token"}
            else:
                args = request.get("args") or {}
                try:
                    answer = {"ok": True, "result": await self.handler(str(request.get("cmd")), args)}
                except EcosysError as exc:
                    answer = {"ok": False, "error": str(exc)}
        except (ValueError, asyncio.TimeoutError, asyncio.LimitOverrunError, ConnectionError) as exc:
            answer = {"ok": False, "error": f"bad control request: {exc}"}
        try:
            writer.write(json.dumps(answer, default=str).encode() + b"\n")
            await writer.drain()
        finally:
            writer.close()


def call(state_file: Path, cmd: str, args: dict[str, Any] | None = None, *, timeout: float = 30.0) -> Any:
    """Send one request to the daemon of ``state_file``; raise DaemonNotRunning or EcosysError."""
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        raise DaemonNotRunning("the Ecosys daemon is not running (start it with 'ecosys up')") from None
    try:
        with socket.create_connection(("127.0.0.1", int(state["port"])), timeout=5) as sock:
            sock.settimeout(timeout)
            sock.sendall(json.dumps({"token": state["token"], "cmd": cmd, "args": args or {}}).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (OSError, KeyError, ValueError):
        raise DaemonNotRunning("the Ecosys daemon is not running (start it with 'ecosys up')") from None
    try:
        answer = json.loads(data)
    except ValueError:
        raise EcosysError("the daemon gave an unreadable answer") from None
    if not answer.get("ok"):
        raise EcosysError(answer.get("error", "the daemon refused"))
    return answer.get("result")
