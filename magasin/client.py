"""Read a Magasin over HTTP(S) or from a ``file:`` URL: the index (cached, with ETag revalidation) and
artifacts (streamed to disk, verified against their size and sha256 before anyone uses them)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import ssl
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import unquote, urljoin, urlparse

from ecosys_core.config_files import parse_model
from ecosys_core.errors import ConfigError, EcosysError, IntegrityError, NotFound
from ecosys_core.safe_paths import portable_name
from ecosys_core.store import Store
from ecosys_core.store.settings_kv import get_setting

from .index import INDEX_NAME, Artifact, MagasinIndex

if TYPE_CHECKING:  # imported when the Magasin is first reached: a daemon that never uses it saves 4 MiB
    import httpx

Progress = Callable[[int, int], None]  # (bytes so far, total)
TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


MAGASIN_ENV = "ECOSYS_MAGASIN"
SAMPLE_STORE = Path(__file__).resolve().parent / "sample" / "store"


def configured_url(store: Store) -> str:
    """$ECOSYS_MAGASIN, else ``ecosys magasin use``'s setting, else the sample Magasin."""
    if os.environ.get(MAGASIN_ENV):
        return os.environ[MAGASIN_ENV]
    return get_setting(store, "magasin_url") or SAMPLE_STORE.as_uri() + "/"


class MagasinError(EcosysError):
    """The Magasin cannot be reached or answered something unusable."""


def index_url(base: str) -> str:
    """The index URL of a Magasin given as a folder URL, a file path, or the index URL itself."""
    if "://" not in base:
        path = Path(base).expanduser().resolve()
        base = path.as_uri() + ("/" if path.is_dir() else "")
    if base.endswith(".json"):
        return base
    return base.rstrip("/") + "/" + INDEX_NAME


class MagasinClient:
    """One Magasin: ``index()`` and ``download()``; transient failures are retried ``retries`` times."""

    def __init__(self, url: str, cache_dir: Path, *, timeout: float = 15.0, retries: int = 3,
                 backoff: float = 0.3) -> None:
        self.url = index_url(url)
        self.cache_dir = cache_dir / hashlib.sha256(self.url.encode()).hexdigest()[:16]
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._http: httpx.Client | None = None

    # -- plumbing ------------------------------------------------------------------------------
    @property
    def http(self) -> httpx.Client:
        import httpx

        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout, follow_redirects=True,
                                      headers={"User-Agent": "ecosys-magasin/1"})
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def _explain(self, url: str, exc: Exception) -> MagasinError:
        import httpx

        if isinstance(exc, httpx.ConnectError) and isinstance(exc.__context__, ssl.SSLError) or "SSL" in str(exc):
            return MagasinError(f"TLS error talking to {url}: {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return MagasinError(f"{url} did not answer within {self.timeout:.0f} s")
        if isinstance(exc, httpx.ConnectError):
            return MagasinError(f"cannot reach the Magasin at {url}: {exc}")
        return MagasinError(f"{url}: {exc}")

    def _request(self, url: str, *, headers: dict[str, str] | None = None, stream: bool = False) -> httpx.Response:
        import httpx

        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                request = self.http.build_request("GET", url, headers=headers)
                response = self.http.send(request, stream=stream)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError) as exc:
                last = exc
            else:
                if response.status_code not in TRANSIENT_STATUS:
                    return response
                last = MagasinError(f"{url} answered {response.status_code}")
                response.close()
            if attempt < self.retries:
                time.sleep(self.backoff * (2 ** attempt))
        assert last is not None
        raise last if isinstance(last, MagasinError) else self._explain(url, last)

    # -- index ---------------------------------------------------------------------------------
    def index(self) -> MagasinIndex:
        """Fetch the index; a 304 (ETag still valid) reuses the cached copy."""
        if self.url.startswith("file:"):
            path = Path(unquote(urlparse(self.url).path))
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise NotFound(f"no Magasin index at {path}: {exc.strerror}") from None
            return self._parse(text)
        cached, etag_file = self.cache_dir / "index.json", self.cache_dir / "index.etag"
        headers = {}
        if cached.exists() and etag_file.exists():
            headers["If-None-Match"] = etag_file.read_text().strip()
        response = self._request(self.url, headers=headers)
        if response.status_code == 304 and cached.exists():
            return self._parse(cached.read_text(encoding="utf-8"))
        if response.status_code == 404:
            raise NotFound(f"no Magasin index at {self.url} (404)")
        if response.status_code != 200:
            raise MagasinError(f"{self.url} answered {response.status_code}")
        text = response.text
        index = self._parse(text)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        cached.write_text(text, encoding="utf-8")
        if "etag" in response.headers:
            etag_file.write_text(response.headers["etag"])
        else:
            etag_file.unlink(missing_ok=True)
        return index

    def _parse(self, text: str) -> MagasinIndex:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(self.url, None, f"the Magasin index is not valid JSON (line {exc.lineno}: {exc.msg})") from None
        if not isinstance(data, dict):
            raise ConfigError(self.url, None, "the Magasin index must be a JSON object")
        return parse_model(MagasinIndex, data, source=self.url)

    # -- artifacts -----------------------------------------------------------------------------
    def artifact_url(self, artifact: Artifact) -> str:
        return urljoin(self.url, artifact.url)

    def download(self, artifact: Artifact, folder: Path, progress: Progress | None = None) -> Path:
        """Stream ``artifact`` into a new file in ``folder`` and return it, verified. On any failure
        (HTTP error, truncated, wrong size or sha256) the partial file is removed and an error raised."""
        url = self.artifact_url(artifact)
        folder.mkdir(parents=True, exist_ok=True)
        # The file keeps the artifact's own name (an executable is installed under it).
        holder = Path(tempfile.mkdtemp(dir=folder, prefix=".download-"))
        path = holder / (portable_name(unquote(urlparse(url).path.rsplit("/", 1)[-1])) or "artifact")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        digest = hashlib.sha256()
        got = 0
        try:
            with os.fdopen(fd, "wb") as out:
                for block in self._blocks(url):
                    got += len(block)
                    if got > artifact.size:
                        raise IntegrityError(f"{url}: more than the {artifact.size} bytes announced")
                    digest.update(block)
                    out.write(block)
                    if progress:
                        progress(got, artifact.size)
            if got != artifact.size:
                raise IntegrityError(f"{url}: download truncated ({got} of {artifact.size} bytes)")
            if digest.hexdigest() != artifact.sha256:
                raise IntegrityError(f"{url}: sha256 mismatch (got {digest.hexdigest()[:16]}…, "
                                     f"index says {artifact.sha256[:16]}…); nothing installed")
        except BaseException:
            shutil.rmtree(holder, ignore_errors=True)
            raise
        return path

    def _blocks(self, url: str):  # type: ignore[no-untyped-def]
        if url.startswith("file:"):
            try:
                with open(unquote(urlparse(url).path), "rb") as fh:
                    while block := fh.read(1 << 20):
                        yield block
            except FileNotFoundError:
                raise NotFound(f"artifact missing: {url}") from None
            return
        import httpx

        response = self._request(url, stream=True)
        try:
            if response.status_code == 404:
                raise NotFound(f"artifact missing: {url} (404)")
            if response.status_code != 200:
                raise MagasinError(f"{url} answered {response.status_code}")
            try:
                yield from response.iter_bytes(1 << 20)
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.TimeoutException) as exc:
                raise IntegrityError(f"{url}: download interrupted ({exc})") from None
        finally:
            response.close()
