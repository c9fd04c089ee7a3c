"""``ECOSYS_HOME/objects``: what this device keeps to build small deltas later, within a disk budget.

- ``shadow/``: a copy of each small file's indexed content (≤ BSDIFF_MAX), by content hash, so a later
  edit can be sent as a bsdiff4 patch against what peers have.
- ``sig/``: the chunk signature of each large file's indexed content (~2 % of its size), so a later
  edit can be sent as chunk copies plus the changed bytes.
- ``grid/``: the grid digests of each large file's indexed content (0.8 % of its size, :mod:`grid`), so
  those changed bytes are the blocks an edit touched, not the whole chunks around them.

All are caches: when one is missing the engine falls back to asking the receiver for its signature, or
to the whole content. Total size stays under ``budget`` bytes (default 320 MiB): least recently used
objects go first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import BinaryIO

from .chunking import Signature
from .grid import DIGEST, GRID

DEFAULT_BUDGET = 320 << 20
RECENT_SIGNATURES = 6 << 20  # bytes of the last signatures used, kept parsed in memory


class ObjectStore:
    """Content-addressed shadows and signatures under one folder, bounded by ``budget`` bytes."""

    def __init__(self, root: Path, budget: int = DEFAULT_BUDGET) -> None:
        self.root = root
        self.budget = budget
        self._usage: int | None = None  # measured once, then kept up to date
        # A small edit of a large file uses the signatures of its last contents several times within a
        # second (the scan keeps one, the sender reads two, the receiver two): 30 ms each to read and
        # parse at 128 MiB, so the last few are kept parsed (never changed once made).
        self._recent: OrderedDict[str, Signature] = OrderedDict()
        self._recent_bytes = 0
        self._recent_lock = threading.Lock()

    def _path(self, kind: str, digest: str) -> Path:
        return self.root / kind / digest[:2] / digest

    def _put(self, kind: str, digest: str, write) -> None:  # type: ignore[no-untyped-def]
        target = self._path(kind, digest)
        if target.exists():
            os.utime(target)
            return
        pending = self.begin(kind, digest)
        try:
            write(pending.file)
        except BaseException:
            pending.drop()
            raise
        pending.keep()

    def begin(self, kind: str, digest: str) -> "PendingObject":
        """An object of ``kind`` for ``digest`` to write as it is made (:class:`PendingObject`)."""
        target = self._path(kind, digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        return PendingObject(self, target)

    def _added(self, target: Path) -> None:
        if self._usage is None:
            self._usage = self.usage()
        else:
            self._usage += target.stat().st_size
        if self._usage > self.budget:
            self.trim()

    def put_shadow(self, digest: str, source: Path) -> None:
        """Keep a copy of ``source`` (whose content hashes to ``digest``)."""
        def write(fh):  # type: ignore[no-untyped-def]
            with open(source, "rb") as src:
                shutil.copyfileobj(src, fh)
        self._put("shadow", digest, write)

    def put_shadow_bytes(self, digest: str, data: bytes) -> None:
        """Keep ``data`` (whose hash is ``digest``)."""
        self._put("shadow", digest, lambda fh: fh.write(data))

    def shadow_path(self, digest: str) -> Path | None:
        """The file holding the kept content for ``digest``, or None."""
        path = self._path("shadow", digest)
        return path if path.is_file() else None

    def shadow(self, digest: str) -> bytes | None:
        """The kept content for ``digest``, or None."""
        try:
            return self._path("shadow", digest).read_bytes()
        except OSError:
            return None

    def put_signature(self, digest: str, signature: Signature) -> None:
        """Keep the chunk signature of the content ``digest``."""
        self._put("sig", digest, signature.write_to)
        self._keep_recent(digest, signature)

    def _keep_recent(self, digest: str, signature: Signature) -> None:
        if signature.nbytes > RECENT_SIGNATURES:
            return
        with self._recent_lock:
            old = self._recent.pop(digest, None)
            if old is not None:
                self._recent_bytes -= old.nbytes
            self._recent[digest] = signature
            self._recent_bytes += signature.nbytes
            while self._recent_bytes > RECENT_SIGNATURES:
                _, gone = self._recent.popitem(last=False)
                self._recent_bytes -= gone.nbytes

    def keep_warm(self, digest: str) -> None:
        """Count the signature of ``digest``, if it is held parsed in memory, as just used (nothing is
        read). A scan calls it for a file's previous content before keeping the new one: the delta to
        send is made against the previous one next, and two 128 MiB files' signatures and a third
        fill ``RECENT_SIGNATURES``, so the new one would push out the very one needed (58 ms to
        read it back, on the first edit after a bulk sync)."""
        with self._recent_lock:
            if digest in self._recent:
                self._recent.move_to_end(digest)

    def has_signature(self, digest: str) -> bool:
        """True when a signature for ``digest`` is kept (not read: cheap)."""
        return self._path("sig", digest).is_file()

    def put_signature_bytes(self, digest: str, data: bytes) -> None:
        """Keep ``data``, a signature in its stored form (checked by the caller), for the content
        ``digest``; it is parsed when a delta first needs it."""
        self._put("sig", digest, lambda fh: fh.write(data))

    def signature_bytes(self, digest: str) -> bytes | None:
        """The kept signature for ``digest`` as stored (``Signature.to_bytes``, not checked), or None."""
        try:
            return self._path("sig", digest).read_bytes()
        except OSError:
            return None

    def signature(self, digest: str) -> Signature | None:
        """The kept signature for ``digest``, or None (also when the file is damaged)."""
        with self._recent_lock:
            recent = self._recent.get(digest)
            if recent is not None:
                self._recent.move_to_end(digest)
        if recent is not None and self._path("sig", digest).is_file():  # trimmed: gone from both
            return recent
        try:
            signature = Signature.from_bytes(self._path("sig", digest).read_bytes())
        except (OSError, ValueError):
            return None
        self._keep_recent(digest, signature)
        return signature

    def put_grid(self, digest: str, data: bytes | bytearray) -> None:
        """Keep ``data``, the grid digests (:mod:`grid`) of the content ``digest``."""
        self._put("grid", digest, lambda fh: fh.write(data))

    def grid_blocks(self, digest: str, start: int, end: int) -> dict[int, int]:
        """Grid digest → offset in the content ``digest`` of its blocks that lie in bytes ``[start, end)``
        (the first block for a digest met twice); empty when its grid is not kept. Only those are read."""
        first, last = -(-max(start, 0) // GRID), end // GRID
        if last <= first:
            return {}
        try:
            with open(self._path("grid", digest), "rb") as fh:
                fh.seek(DIGEST * first)
                data = fh.read(DIGEST * (last - first))
        except OSError:
            return {}
        out: dict[int, int] = {}
        for k in range(len(data) // DIGEST):
            out.setdefault(int.from_bytes(data[DIGEST * k:DIGEST * (k + 1)], "big"), GRID * (first + k))
        return out

    def usage(self) -> int:
        """Bytes used now."""
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def trim(self) -> None:
        """Delete least recently used objects until the store fits its budget."""
        if not self.root.is_dir():
            return
        files = [(p.stat().st_mtime, p.stat().st_size, p) for p in self.root.rglob("*") if p.is_file()]
        total = sum(size for _, size, _ in files)
        for _, size, path in sorted(files):
            if total <= self.budget:
                break
            path.unlink(missing_ok=True)
            total -= size
        self._usage = total


class PendingObject:
    """An object written into a temp file as it is made, and kept (moved into place) only by :meth:`keep`:
    one dropped, or forgotten (garbage-collected unkept, as when a rebuild fails), leaves nothing."""

    def __init__(self, store: ObjectStore, target: Path) -> None:
        self._store, self._target = store, target
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        self.file = os.fdopen(fd, "wb")
        self._forget = weakref.finalize(self, _discard, self.file, name)
        self._name = name

    def keep(self) -> None:
        """Close the file and move it into place (an object already there stays, as it is the same)."""
        self._forget.detach()
        try:
            self.file.close()
            if self._target.exists():
                Path(self._name).unlink(missing_ok=True)
                os.utime(self._target)
                return
            os.replace(self._name, self._target)
        except BaseException:
            Path(self._name).unlink(missing_ok=True)
            raise
        self._store._added(self._target)

    def drop(self) -> None:
        """Close and remove the file."""
        self._forget()


def _discard(file: BinaryIO, name: str) -> None:
    try:
        file.close()
    except OSError:
        pass
    Path(name).unlink(missing_ok=True)
