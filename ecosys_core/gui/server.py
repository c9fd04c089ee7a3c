"""The dashboard's server: the page, the login link, and the JSON API (``/api/v1``, docs/api.md) over
the daemon's own commands, with live updates as server-sent events. Every request passes the
:class:`~.guard.Guard` first; a refused one changes nothing."""

from __future__ import annotations

import asyncio
import json
import logging
from importlib import resources
from typing import Any, Awaitable, Callable, Sequence

from ..errors import EcosysError, NotFound
from ..prompts import Prompts
from .guard import Guard
from .uploads import Uploads
from .http import BadRequest, Request, error_response, event, event_stream_head, json_response, read_request, \
    response

log = logging.getLogger(__name__)
API = "/api/v1"
UPLOAD = f"{API}/largage/upload"
DEFAULT_PORT = 22801
# The daemon commands the API offers (``stop`` too: the page may stop its daemon, with CSRF like any change)
COMMANDS = frozenset({"status", "connect", "link", "unlink", "share", "share_all", "unshare", "rescan", "send",
                      "offers", "cancel", "stop", "add_task", "conflicts", "resolve_conflict"})
EVENT_POLL_S = 1.0  # a 100,000-file task's status costs a few count queries: once a second at most
HEARTBEAT_S = 15.0
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript"),
          "/app.css": ("app.css", "text/css")}

Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


def parse_gui_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (port 0: any free one) → (host, port); EcosysError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise EcosysError(f"not a dashboard address (HOST:PORT): {text!r}")
    return host.strip("[]"), int(port)


class GuiServer:
    """Serves the dashboard on ``host:port`` for a daemon whose commands ``handle`` runs."""

    def __init__(self, guard: Guard, handle: Handler, prompts: Prompts, run_blocking: Callable[..., Awaitable[Any]],
                 device_id: str, uploads: Uploads, open_folder: Callable[[], None],
                 plugin_commands: Sequence[str] = ()) -> None:
        self.guard, self.handle, self.prompts, self.run_blocking = guard, handle, prompts, run_blocking
        self.device_id = device_id  # readable form, shown as a QR code
        self.uploads = uploads
        self.open_folder = open_folder  # shows received files in the person's file manager
        self.commands = COMMANDS | set(plugin_commands)
        live = ["status", "offers", *sorted(c for c in plugin_commands if c.endswith(".jobs"))]
        self.live: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
            (name, lambda name=name: self.handle(name, {})) for name in live]
        self.live.insert(1, ("prompts", self._prompts))
        self._server: asyncio.base_events.Server | None = None
        self._closing = asyncio.Event()

    async def start(self, host: str, port: int) -> int:
        """Listen; return the port (OSError when it cannot)."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=64 << 10)
        self.guard.port = self._server.sockets[0].getsockname()[1]
        return self.guard.port

    async def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                request = await asyncio.wait_for(read_request(reader, (UPLOAD,)), 10)
                await self._route(request, writer, reader)
            except BadRequest as exc:
                writer.write(error_response(exc.status, str(exc)))
            except asyncio.TimeoutError:
                writer.write(error_response(400, "request too slow"))
            await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _route(self, request: Request, writer: asyncio.StreamWriter, reader: asyncio.StreamReader) -> None:
        path = request.path
        open_path = path in ASSETS or path == "/login"
        refused = self.guard.refusal(request, open_path=open_path)
        if refused is not None:
            writer.write(error_response(*refused))
            return
        if path in ASSETS:
            if request.method not in ("GET", "HEAD"):
                writer.write(error_response(405, "GET only"))
                return
            name, kind = ASSETS[path]
            writer.write(response(200, resources.files(__package__).joinpath("assets", name).read_bytes(), kind))
        elif path == "/login":
            self._login(request, writer)
        elif path == f"{API}/events":
            await self._events(writer)
        elif path == UPLOAD and request.method == "POST":
            writer.write(await self._upload(request, reader))
        elif path.startswith(API + "/"):
            writer.write(await self._api(request, path[len(API) + 1:]))
        else:
            writer.write(error_response(404, "no such page"))

    def _login(self, request: Request, writer: asyncio.StreamWriter) -> None:
        cookie = self.guard.use_login(request.query.get("token", ""))
        if cookie is None:
            writer.write(error_response(401, "this login link was used or has expired: run 'ecosys gui' again"))
            return
        writer.write(response(303, b"", "text/plain", {"Location": "/", "Set-Cookie": self.guard.cookie_header(cookie)}))

    async def _api(self, request: Request, route: str) -> bytes:
        """One API call; errors are ``{"error": …}`` with a 4xx status, never a traceback."""
        try:
            if route == "session" and request.method == "GET":
                session = self.guard.session_of(request)
                return json_response(200, {"csrf": self.guard.csrf_token(session) if session else None})
            if route == "prompts" and request.method == "GET":
                pending = await self.run_blocking(self.prompts.pending)
                return json_response(200, [p.to_json() for p in pending])
            if route == "prompts/answer" and request.method == "POST":
                body = _object(request.json())
                prompt = await self.run_blocking(self.prompts.give, str(body.get("prompt", "")),
                                                 str(body.get("answer", "")))
                return json_response(200, prompt.to_json())
            if route == "largage/send" and request.method == "POST":
                body = _object(request.json())
                paths = await self.run_blocking(self.uploads.paths, str(body.get("batch", "")))
                return json_response(200, await self.handle("send", {"device": body.get("device", ""), "paths": paths}))
            if route == "largage/open" and request.method == "POST":
                await self.run_blocking(self.open_folder)
                return json_response(200, {})
            if route.startswith("commands/") and request.method == "POST":
                name = route[len("commands/"):]
                if name not in self.commands:
                    return error_response(404, f"no command {name!r}")
                return json_response(200, await self.handle(name, _object(request.json())))
            if route == "device/qr.svg" and request.method == "GET":
                return response(200, await self.run_blocking(self._qr), "image/svg+xml")
            if route == "status" and request.method == "GET":
                return json_response(200, await self.handle("status", {}))
            return error_response(404, f"no API route {request.method} {route}")
        except NotFound as exc:
            return error_response(404, str(exc))
        except (EcosysError, BadRequest) as exc:
            return error_response(400, str(exc))
        except (KeyError, TypeError, ValueError) as exc:
            return error_response(400, f"bad arguments: {exc}")

    async def _upload(self, request: Request, reader: asyncio.StreamReader) -> bytes:
        """One file of an upload batch, its body streamed to disk."""
        try:
            target = await self.uploads.receive(request.query.get("batch", ""), request.query.get("path", ""),
                                                reader, request.length)
        except EcosysError as exc:
            return error_response(400, str(exc))
        return json_response(200, {"size": request.length, "name": target.name})

    async def _events(self, writer: asyncio.StreamWriter) -> None:
        """Server-sent events: ``status`` and ``prompts`` each time they change, a comment line as a
        heartbeat; ends when the daemon stops or the page goes."""
        writer.write(event_stream_head())
        last: dict[str, str] = {}
        quiet = 0.0
        while not self._closing.is_set():
            for name, fetch in self.live:
                data = await fetch()
                text = json.dumps(data, default=str, sort_keys=True)
                if last.get(name) != text:
                    last[name] = text
                    writer.write(event(name, data))
                    quiet = 0.0
            if quiet >= HEARTBEAT_S:
                writer.write(b": ok\n\n")
                quiet = 0.0
            await writer.drain()
            try:
                await asyncio.wait_for(self._closing.wait(), EVENT_POLL_S)
            except asyncio.TimeoutError:
                quiet += EVENT_POLL_S

    def _qr(self) -> bytes:
        """This device's readable id as a QR code (SVG), for pairing from a phone."""
        import io

        import segno

        out = io.BytesIO()
        segno.make(self.device_id, error="m").save(out, kind="svg", scale=4, border=2, title="Ecosys device id")
        return out.getvalue()

    async def _prompts(self) -> list[dict[str, Any]]:
        return [p.to_json() for p in await self.run_blocking(self.prompts.pending)]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest(400, "the body must be a JSON object")
    return body
