"""Who may use the dashboard: the person at this device, through their own browser, and nobody else.

- A per-home secret (``ECOSYS_HOME/gui-secret``, readable by the owner only) is the API key for scripts
  (``X-API-Key`` header) and signs browser sessions.
- A browser gets in only through a one-time login link (``ecosys gui`` asks the daemon for one; valid
  60 s, used once), which sets a session cookie: HttpOnly (no script reads it), SameSite=Strict (no other
  site's page sends it).
- A request that changes something with the cookie must also carry the session's CSRF token in
  ``X-CSRF-Token``, which only a page served here can read (from ``GET /api/v1/session``).
- The Host header must name this server by a loopback name or the address it was asked to listen on:
  a page of another site that rebinds its DNS name to 127.0.0.1 is refused (a Syncthing CVE class).
- A request carrying an ``Origin`` other than this server's is refused; no CORS header is ever sent.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from .http import Request

COOKIE = "ecosys_session"
LOGIN_TTL_S = 60.0
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = ("GET", "HEAD")


def load_or_create_secret(path: Path) -> str:
    """The home's dashboard secret, made (0600) on first use."""
    try:
        text = path.read_text().strip()
        if len(text) >= 32:
            return text
    except OSError:
        pass
    secret = secrets.token_urlsafe(32)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret)
    os.replace(tmp, path)
    return secret


class Guard:
    """Checks every request against the rules above; ``refusal`` says why one is refused (None: let in)."""

    def __init__(self, secret: str, host: str, port: int) -> None:
        self.secret = secret
        self.host, self.port = host, port
        self._logins: dict[str, float] = {}

    # -- sessions -------------------------------------------------------------------------------
    def _sign(self, purpose: str, value: str) -> str:
        return hmac.new(self.secret.encode(), f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()

    def login_token(self) -> str:
        """A one-time login token, valid LOGIN_TTL_S."""
        now = time.monotonic()
        self._logins = {t: exp for t, exp in self._logins.items() if exp > now}
        token = secrets.token_urlsafe(24)
        self._logins[token] = now + LOGIN_TTL_S
        return token

    def use_login(self, token: str) -> str | None:
        """A new session cookie value for a valid login token (which is used up); None otherwise."""
        expiry = self._logins.pop(token, None)
        if expiry is None or expiry < time.monotonic():
            return None
        session = secrets.token_urlsafe(24)
        return f"{session}.{self._sign('session', session)}"

    def session_of(self, request: Request) -> str | None:
        """The session id the request's cookie proves, or None."""
        value = request.cookies.get(COOKIE, "")
        session, _, signature = value.partition(".")
        if session and hmac.compare_digest(signature, self._sign("session", session)):
            return session
        return None

    def csrf_token(self, session: str) -> str:
        """The CSRF token of ``session`` (the page sends it back in X-CSRF-Token)."""
        return self._sign("csrf", session)

    def cookie_header(self, value: str) -> str:
        return f"{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/"

    # -- checks ---------------------------------------------------------------------------------
    def host_allowed(self, request: Request) -> bool:
        """The Host header names this server (DNS rebinding guard)."""
        host = request.headers.get("host", "")
        names = LOOPBACK_NAMES if self.host in ("127.0.0.1", "::1", "localhost") else (*LOOPBACK_NAMES, self.host)
        return host in {f"{name}:{self.port}" for name in names}

    def origin_allowed(self, request: Request) -> bool:
        """No Origin (a direct request), or this server's own."""
        origin = request.headers.get("origin")
        return origin is None or origin == f"http://{request.headers.get('host', '')}"

    def api_key_ok(self, request: Request) -> bool:
        return hmac.compare_digest(request.headers.get("x-api-key", ""), self.secret)

    def refusal(self, request: Request, *, open_path: bool = False) -> tuple[int, str] | None:
        """(status, reason) when ``request`` must be refused; None when it may go on. ``open_path``: a
        page that needs no session (the login link, the page shell)."""
        if not self.host_allowed(request):
            return 403, "this dashboard answers only to its own address (Host header)"
        if not self.origin_allowed(request):
            return 403, "requests from other origins are refused"
        if open_path:
            return None
        if self.api_key_ok(request):
            return None
        session = self.session_of(request)
        if session is None:
            return 401, "sign in with 'ecosys gui' (or send the X-API-Key of this home)"
        if request.method not in SAFE_METHODS and not hmac.compare_digest(
                request.headers.get("x-csrf-token", ""), self.csrf_token(session)):
            return 403, "missing or wrong X-CSRF-Token"
        return None
