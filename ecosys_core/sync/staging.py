"""Content written ahead of its apply: a batch's small files built and made durable together, and a
large file's delta rebuilt while it streams in, without the engine lock.

What is written here is always exactly the announced content (its hash is checked), so it is right
whatever the apply then decides; the apply only moves it into place (``ReadyContents.pop``), and what it
does not use is removed.
"""

from __future__ import annotations

import io
import logging
import threading
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Sequence

from sqlalchemy.orm import Session

from ..errors import ChangeRefused, IntegrityError, NotFound
from ..safe_paths import InsideChecker
from ..store import Store
from ..store.index import Entry, get_entry
from ..store.versions import Order, compare
from .chunking import Copy, Signature, SignatureBuilder, check_signature_bytes, chunk_params, derive_signature
from .context import TaskContexts
from .delta import BSDIFF_MAX, DeltaError, apply_delta
from .fsio import atomic_writer, same_device, write_temps
from .grid import GridBuilder, grid_builder
from .messages import Message, Modification, SignatureTrailer, is_streaming
from .objects import ObjectStore, PendingObject

log = logging.getLogger(__name__)
STAGE_MAX = 32 << 20  # bytes of a batch's content built in memory before writing it
ReadyKey = tuple[str, str, str]  # (secure_id, path, content hash)


def stageable(m: Message) -> bool:
    """A modification whose whole delta is already here and small: worth writing ahead in a batch."""
    return (isinstance(m, Modification) and not m.deleted and isinstance(m.delta, list)
            and m.size <= BSDIFF_MAX)


def base_of(objects: ObjectStore, target: Path, local: Entry | None, m: Modification) -> Path | None:
    """The file ``m``'s delta applies to: ours when it is the delta's base, else the kept copy of that
    base; None when we have neither."""
    if local is not None and not local.deleted and local.hash == m.base_hash and target.is_file():
        return target
    return objects.shadow_path(m.base_hash)


class NewSignature:
    """The chunk signature of a large content being rebuilt, for later deltas against it: derived from the
    base's kept signature and the ranges the delta copies (a few reads); the sender's, when a whole
    content's stream ends with it (``Modification.signed``); or else built from every byte as it is
    written (a chunking pass). Its grid digests (:mod:`grid`) are taken from the bytes written (where
    the C loop is built), and kept once the rebuild is done."""

    def __init__(self, objects: ObjectStore, m: Modification) -> None:
        base = objects.signature(m.base_hash) if m.base_hash else None
        self.base = base if base is not None and base.params == chunk_params(m.size) else None
        self.size = m.size
        self.copies: list[Copy] | None = [] if self.base is not None else None
        self.signed = self.base is None and m.signed
        self.builder = SignatureBuilder(m.size) if self.base is None and not self.signed else None
        self.given: bytes | None = None  # the signature a signed stream ended with
        self.objects, self.content = objects, m.hash  # where a given signature is kept, for which content
        self.rebuilt = False  # False: nothing was rebuilt through this one
        self.grid: GridBuilder | None = grid_builder(self._write_grid)
        self._grid_file: PendingObject | None = None  # written as the bytes go by: 1 MiB less at the peak

    def adopt(self, other: "NewSignature") -> None:
        """Follow what ``other`` followed instead (the rebuild of a content written ahead, whose
        signature is taken once it is in place)."""
        self.base, self.size, self.copies = other.base, other.size, other.copies
        self.builder, self.rebuilt = other.builder, other.rebuilt
        self.signed, self.given, self.grid, self._grid_file = other.signed, other.given, other.grid, other._grid_file

    @property
    def observe(self) -> Callable[[bytes | memoryview], None] | None:
        return self.builder.feed if self.builder is not None else None

    @property
    def beside(self) -> Callable[[bytes | memoryview], None] | None:
        return self.grid.feed if self.grid is not None else None

    def keep_trailer(self, trailer: SignatureTrailer) -> None:
        """Take the signature a signed stream ended with (``apply_delta``'s ``trailer``)."""
        if self.signed:
            self.given = trailer.data

    def result(self, temp: Path | BinaryIO) -> Signature | None:
        """The signature of the content rebuilt in ``temp`` (a path, or the file open for reading; None
        when nothing was rebuilt here, or for the sender's signature, kept as it came or left to the
        engine to cut)."""
        if not self.rebuilt:
            return None
        self._keep_grid()
        if self.builder is not None:
            return self.builder.signature() if self.builder.seen == self.size else None
        if self.base is None:
            return self._sent()
        assert self.copies is not None
        try:
            with (open(temp, "rb") if isinstance(temp, Path) else nullcontext(temp)) as fh:
                def read(at: int, n: int) -> bytes:
                    fh.seek(at)
                    return fh.read(n)
                return derive_signature(self.base, self.copies, self.size, read)
        except (OSError, ValueError):
            return None

    def _write_grid(self, digests: bytes) -> None:
        if self.grid is None:
            return  # a write failed: no grid for this content
        try:
            if self._grid_file is None:
                self._grid_file = self.objects.begin("grid", self.content)
            self._grid_file.file.write(digests)
        except OSError:  # a cache: the rebuild goes on without it
            self.grid = None
            if self._grid_file is not None:
                self._grid_file.drop()
                self._grid_file = None

    def _keep_grid(self) -> None:
        """Keep the grid taken from the rebuilt bytes once they are checked (a rebuild that failed drops
        its grid with this object)."""
        grid, self.grid = self.grid, None
        pending, self._grid_file = self._grid_file, None
        if pending is None:
            return
        try:
            if grid is not None and grid.seen == self.size:
                pending.keep()
            else:
                pending.drop()
        except OSError:  # a cache: later deltas are only larger without it
            pass

    def _sent(self) -> None:
        """Keep the sender's signature as it came when it describes a content of this size (parsed only
        when a delta needs it: parsing it now was the receiver's peak of memory). None either way: one
        that did not come or does not fit is cut from the file in place, as any content without a kept
        signature is (``LocalChanges.remember_content``)."""
        given, self.given = self.given, None
        if given is None:
            return None
        try:
            check_signature_bytes(given, self.size)
            self.objects.put_signature_bytes(self.content, given)
        except ValueError as exc:
            log.warning("a sender's chunk signature was not kept (%s); the content is cut here", exc)
        except OSError:  # a cache: later deltas are only larger without it
            pass
        return None


def new_signature(objects: ObjectStore, m: Modification) -> NewSignature | None:
    """A :class:`NewSignature` for ``m``'s content, None for a content small enough to travel by bsdiff."""
    return NewSignature(objects, m) if m.size > BSDIFF_MAX else None


def rebuild(target: Path, m: Modification, base: Path | None, *, folder: Path | None = None,
            signature: NewSignature | None = None) -> Path:
    """``m``'s content in a durable temp file beside ``target`` (or in ``folder``, on its device), its
    hash checked (IntegrityError otherwise; DeltaError or OSError when the delta or the disk fails).
    ``signature`` follows the rebuild (see :class:`NewSignature`)."""
    with atomic_writer(target, folder, m.size) as (fh, temp):
        if signature is not None:
            signature.rebuilt = True
        got = apply_delta(m.delta, base, fh, expected_size=m.size,
                          observe=signature.observe if signature is not None else None,
                          beside=signature.beside if signature is not None else None,
                          copies=signature.copies if signature is not None else None,
                          trailer=signature.keep_trailer if signature is not None else None)
        if got != m.hash:
            raise IntegrityError(f"{m.path}: content hashes to {got[:12]}…, {m.hash[:12]}… announced")
    return temp


class ReadyContents:
    """Verified, durable temp files holding a known content, by (task, path, hash), waiting for the
    apply to move them. Thread-safe."""

    def __init__(self) -> None:
        self._ready: dict[ReadyKey, Path] = {}
        self._signatures: dict[ReadyKey, NewSignature] = {}
        self._lock = threading.Lock()

    def offer(self, key: ReadyKey, temp: Path, signature: NewSignature | None = None) -> bool:
        """Record ``temp`` as the content for ``key`` (with what its signature is made from, to take
        once it is in place); False (and ``temp`` removed) if one is there."""
        with self._lock:
            if key not in self._ready:
                self._ready[key] = temp
                if signature is not None:
                    self._signatures[key] = signature
                return True
        temp.unlink(missing_ok=True)
        return False

    def take(self, key: ReadyKey) -> tuple[Path, NewSignature | None] | None:
        """The temp file ready for ``key``, now the caller's to move or remove, and its signature's makings."""
        with self._lock:
            temp = self._ready.pop(key, None)
            signature = self._signatures.pop(key, None)
        return (temp, signature) if temp is not None else None

    def discard(self, key: ReadyKey, temp: Path | None = None) -> None:
        """Forget and remove the content ready for ``key`` (only if it is ``temp``, when given)."""
        with self._lock:
            if key not in self._ready or (temp is not None and self._ready[key] != temp):
                return
            temp = self._ready.pop(key)
            self._signatures.pop(key, None)
        temp.unlink(missing_ok=True)


class Staging:
    """Writes received content ahead of its apply into ``folder`` (``ECOSYS_HOME/staging``; None: beside
    the target). Only one engine may use a staging folder."""

    def __init__(self, store: Store, objects: ObjectStore, contexts: TaskContexts, folder: Path | None,
                 ready: ReadyContents) -> None:
        self.store = store
        self.objects = objects
        self.contexts = contexts
        self.folder = folder
        self.ready = ready

    @contextmanager
    def batch(self, peer: str, messages: Sequence[Message], paths: InsideChecker) -> Iterator[None]:
        """Build the new content of the batch's small inline modifications in memory, each checked against
        its announced hash, then write them all to durable temp files (:func:`fsio.write_temps`), so that
        applying them one by one afterwards costs a rename. At most ``STAGE_MAX`` bytes are held in
        memory per batch; what the apply did not use is removed on exit."""
        mine: dict[ReadyKey, Path] = {}
        try:
            contents: dict[ReadyKey, tuple[Path, bytes]] = {}
            held = 0
            with self.store.reading() as session:
                for m in messages:
                    if held >= STAGE_MAX or not stageable(m) or (key := (m.secure_id, m.path, m.hash)) in contents:
                        continue
                    built = self._build_in_memory(session, peer, m, paths)
                    if built is not None:
                        contents[key] = built
                        held += len(built[1])
            keys = list(contents)
            temps = write_temps([contents.pop(key) for key in keys], self.folder)
            mine = {key: temp for key, temp in zip(keys, temps) if temp is not None and self.ready.offer(key, temp)}
            yield
        finally:
            for key, temp in mine.items():  # used ones were moved away already
                self.ready.discard(key, temp)

    def prebuild(self, peer: str, m: Modification) -> ReadyKey | None:
        """Write the content of ``m``, whose delta is still streaming in, to a durable temp file now,
        without the engine lock, so other messages are applied while it arrives; the apply then only
        moves it into place. The content is checked against its announced hash, so it is right whatever
        the apply decides, even if the local file changed meanwhile. Returns the key to pass to
        :meth:`ReadyContents.discard` once ``m`` was received, or None when nothing was written:
        refused, no base here (the delta is left for the apply, which answers as it always does), or a
        delta that failed or hashed wrong (used up: the apply asks for the whole content again)."""
        if not is_streaming(m) or m.deleted:
            return None
        with self.store.session(own=True) as session:
            found = self._target_and_base(session, peer, m, InsideChecker())
        if found is None:
            return None
        target, base = found
        signature = new_signature(self.objects, m)
        folder = self.folder if self.folder is not None and same_device(self.folder, target.parent) else None
        try:
            temp = rebuild(target, m, base, folder=folder, signature=signature)
        except (IntegrityError, DeltaError, OSError) as exc:
            log.warning("discarded change of %s from %s: %s", m.path, m.modified_by, exc)
            return None
        key = (m.secure_id, m.path, m.hash)  # its signature is taken once it is in place (the apply)
        return key if self.ready.offer(key, temp, signature) else None

    def _build_in_memory(self, session: Session, peer: str, m: Modification, paths: InsideChecker
                         ) -> tuple[Path, bytes] | None:
        """``m``'s target and announced content, built in memory and verified; None when it cannot be
        built now (the apply will then do what it always does)."""
        found = self._target_and_base(session, peer, m, paths)
        if found is None:
            return None
        target, base = found
        out = io.BytesIO()
        try:
            got = apply_delta(m.delta, base, out, expected_size=m.size)
        except (DeltaError, OSError):
            return None
        return (target, out.getvalue()) if got == m.hash else None

    def _target_and_base(self, session: Session, peer: str, m: Modification, paths: InsideChecker
                         ) -> tuple[Path, Path | None] | None:
        """Where ``m`` goes and the file its delta applies to (None: a whole content); None when ``m``
        is refused, outdated here (nothing is decoded for a change the apply will not take), or its
        base is not here, which the apply then answers as it always does."""
        try:
            ctx, target = self.contexts.checked(peer, m.secure_id, m.path, paths)
        except (ChangeRefused, NotFound):
            return None
        local = get_entry(session, ctx.id, m.path)
        if local is not None and compare(m.version, local.version) in (Order.EQUAL, Order.OLDER):
            return None
        if not m.base_hash:
            return target, None
        base = base_of(self.objects, target, local, m)
        return (target, base) if base is not None else None
