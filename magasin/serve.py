"""``ecosys magasin serve``: a small HTTP server for a Magasin folder, with ETags, for trying things out."""

from __future__ import annotations

import functools
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Handler(SimpleHTTPRequestHandler):
    quiet = False

    def _etag(self) -> str | None:
        path = self.translate_path(self.path)
        try:
            st = os.stat(path)
        except OSError:
            return None
        return f'"{st.st_size:x}-{st.st_mtime_ns:x}"'

    def send_head(self):  # type: ignore[no-untyped-def]
        etag = self._etag()
        if etag and self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return None
        return super().send_head()

    def end_headers(self) -> None:
        etag = self._etag()
        if etag and not any(h.lower().startswith(b"etag") for h in getattr(self, "_headers_buffer", [])):
            self.send_header("ETag", etag)
        super().end_headers()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        getattr(self.server, "requests", []).append((self.path, int(code) if str(code).isdigit() else code))
        super().log_request(code, size)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        if not self.quiet:
            super().log_message(format, *args)


def make_server(folder: Path, host: str = "127.0.0.1", port: int = 8765, *, quiet: bool = False) -> ThreadingHTTPServer:
    """An HTTP server for ``folder`` (port 0 picks a free one); call ``serve_forever`` or use ``serve_in_thread``."""
    handler = type("MagasinHandler", (_Handler,), {"quiet": quiet})
    server = ThreadingHTTPServer((host, port), functools.partial(handler, directory=str(folder)))
    server.daemon_threads = True
    server.requests = []  # type: ignore[attr-defined]  # (path, status) of each request, for curious callers
    return server


def serve_in_thread(server: ThreadingHTTPServer) -> threading.Thread:
    """Run ``server`` in a daemon thread (stop it with ``server.shutdown()``)."""
    thread = threading.Thread(target=server.serve_forever, name="magasin-http", daemon=True)
    thread.start()
    return thread
