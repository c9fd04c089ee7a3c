"""The sync engine: the rules that keep one device's tasks in step with its peers. No sockets here.

It takes messages in (:meth:`SyncEngine.receive`) and gives messages out (:meth:`SyncEngine.outgoing`),
so devices can be tested in one process and driven unchanged by the network layer. DESIGN.md §1–2:

- state, not a log, is the truth: each file has a version vector; a delta is only an encoding;
- a delta is applied only on the content it was made from, the result is verified against its hash
  and moved into place atomically, then indexed (a crash leaves old or new, and a rescan repairs);
- outdated event → MODIFICATION_DONE; newer with another base → NEED_STATE; concurrent → both kept;
- pending events (retard) per path and device; what a device learns it passes on to the others.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from pluggy import HookRelay
from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import EcosysError, IntegrityError, NotFound, UnsafePath
from ..safe_paths import InsideChecker, join_inside
from ..store import Store
from ..store.index import (
    Entry,
    FileStat,
    IndexBatch,
    acknowledge,
    drop_pending,
    get_entry,
    linked_devices,
    pending_counts,
    pending_for,
    put_entry,
    queue_pending,
    task_row,
)
from ..store.tables import SyncTask
from ..store.tasks import task_info
from ..store.versions import Order, bump, compare, merge
from ..types import TaskInfo
from . import notify
from .chunking import Signature, SignatureBuilder, digest_file
from .delta import BSDIFF_MAX, DeltaError, apply_delta, encode_against, encode_bsdiff, encode_full
from .fsio import (
    atomic_writer,
    commit_temp,
    conflict_name,
    deferred_dir_syncs,
    remove_empty_parents,
    same_device,
    write_temps,
)
from .messages import Message, Modification, ModificationDone, NeedState, is_streaming
from .objects import ObjectStore
from .scanner import RACY_NS, ScanResult, scan_paths, scan_tree

log = logging.getLogger(__name__)
SHADOW_MIN = 16 << 10
STAGE_MAX = 32 << 20  # bytes of a batch's content built in memory before writing it


class Refused(EcosysError):
    """A message this device will not act on (unknown task, unlinked device, unsafe path)."""


def _stageable(m: Message) -> bool:
    """A modification whose whole delta is already here and small: worth writing ahead in a batch."""
    return (isinstance(m, Modification) and not m.deleted and isinstance(m.delta, list)
            and m.size <= BSDIFF_MAX)


def _runs(messages: Sequence[Message]) -> Iterator[Sequence[Message]]:
    """``messages`` cut into runs of messages that are all here, each streaming one being a run alone."""
    start = 0
    for i, m in enumerate(messages):
        if is_streaming(m):
            if i > start:
                yield messages[start:i]
            yield messages[i:i + 1]
            start = i + 1
    if start < len(messages):
        yield messages[start:]


def short_id(device_id: str) -> str:
    """The key of ``device_id`` in version vectors (its first 48 bits, hex)."""
    return device_id[:12]


@dataclass(frozen=True)
class TaskContext:
    """What the hot paths need of a task, cached until the store says tasks or links changed."""

    id: int
    info: TaskInfo
    linked: frozenset[str]

    @property
    def root(self) -> Path:
        return self.info.root


@dataclass
class ScanReport:
    """What a scan changed in the index."""

    files_seen: int = 0
    bytes_hashed: int = 0
    changed: int = 0
    deleted: int = 0

    def __add__(self, other: "ScanReport") -> "ScanReport":
        return ScanReport(self.files_seen + other.files_seen, self.bytes_hashed + other.bytes_hashed,
                          self.changed + other.changed, self.deleted + other.deleted)


def _outermost(folders: Iterable[str]) -> list[str]:
    """``folders`` without those inside another one of them ("" stands for the root, holding all)."""
    out: list[str] = []
    for folder in sorted(set(folders)):  # a folder sorts before everything inside it
        if not any(folder == kept or folder.startswith(kept + "/") or not kept for kept in out):
            out.append(folder)
    return out


def _winner_key(entry: Entry) -> tuple[int, int, str, str]:
    # Same on every device: a modification beats a deletion, then the later edit, then the device id,
    # then the content hash, so no two different versions ever tie.
    return (0 if entry.deleted else 1, entry.modified_ns, entry.modified_by, entry.hash)


class SyncEngine:
    """One device's engine over its store and object cache. Thread-safe: one lock guards every
    read-compare-write of the index against the disk, so the engine's own writes are never mistaken for
    local edits (the seed's receiving_update) and a user edit is always indexed before being overwritten."""

    def __init__(self, store: Store, objects: ObjectStore, device_id: str, hook: HookRelay | None = None,
                 staging: Path | None = None) -> None:
        """``staging``: a folder of this device's own (``ECOSYS_HOME/staging``) where received content
        waits before being moved into a task folder (see ``fsio.write_temps``); None writes beside the
        target. Only one engine may use a staging folder."""
        self.store = store
        self.objects = objects
        self.staging = staging
        self.device_id = device_id
        self.me = short_id(device_id)
        self.hook = hook
        self._lock = threading.RLock()
        self._contexts: dict[str, TaskContext] = {}
        self._generation = -1
        # (task, path, hash) -> a verified, durable temp file holding that content, written ahead by
        # _staging (a batch's small files) or prebuild (a streaming delta); the apply only moves it.
        self._ready: dict[tuple[str, str, str], Path] = {}
        self._ready_lock = threading.Lock()
        self._paths: InsideChecker | None = None  # during receive_many: folders already checked

    def _ctx(self, secure_id: str) -> TaskContext:
        """The task's id, snapshot and linked devices (cached; NotFound if there is no such task)."""
        if self._generation != self.store.generation:
            self._contexts.clear()
            self._generation = self.store.generation
        ctx = self._contexts.get(secure_id)
        if ctx is None:
            with self.store.session(own=True) as session:  # cached beyond any batch: committed state only
                task = self._task(session, secure_id)
                ctx = TaskContext(task.id, task_info(task), frozenset(linked_devices(session, task.id)))
            self._contexts[secure_id] = ctx
        return ctx

    def _fresh_entry(self, ctx: TaskContext, path: str) -> Entry | None:
        """The entry of ``path`` once the disk agrees with it (rescanning that path only if it does not)."""
        with self.store.session() as session:
            entry = get_entry(session, ctx.id, path)
        try:
            st = os.lstat(os.path.join(ctx.root, *path.split("/")))
        except OSError:
            st = None
        if entry is None or entry.deleted:
            clean = st is None
        else:
            clean = (st is not None and st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns
                     and time.time_ns() - st.st_mtime_ns > RACY_NS) or (st is None and ctx.info.backup_mode)
        if clean:
            return entry
        self.scan(ctx.info.secure_id, [path])
        with self.store.session() as session:
            return get_entry(session, ctx.id, path)

    # ------------------------------------------------------------------ local changes
    def scan(self, secure_id: str, paths: Iterable[str] | None = None, *, folders: Iterable[str] = ()) -> ScanReport:
        """Bring the index of task ``secure_id`` up to date with its folder: all of it, or only ``paths``
        and the subtrees of ``folders`` ('/'-separated, relative to the root) when either is given. Every
        local change bumps this device's counter and is queued for the linked devices."""
        with self._lock, self.store.session() as session:
            task = self._task(session, secure_id)
            root = Path(task.root)
            folders = _outermost(folders)
            if (paths is None and not folders) or "" in folders:
                batch = IndexBatch(session, task.id)
                result = scan_tree(root, batch.fingerprints, batch.stats)
                # Under the lock no write of ours is in flight: these are leftovers of a crash.
                for temp in result.stale_temp:
                    temp.unlink(missing_ok=True)
                return self._record_scan(task, result, batch.get, batch.put, batch.queue, linked_devices(session, task.id))
            targets = linked_devices(session, task.id)
            report = ScanReport()
            for folder in folders:  # a folder made, moved or removed: what is below it, as a whole scan sees it
                batch = IndexBatch(session, task.id, under=folder)
                result = scan_tree(root, batch.fingerprints, batch.stats, under=folder)
                report += self._record_scan(task, result, batch.get, batch.put, batch.queue, targets)
            paths = [p for p in paths or () if not any(p.startswith(f + "/") for f in folders)]
            known = {p: FileStat(e.size, e.mtime_ns, e.deleted, e.hash)
                     for p in paths if (e := get_entry(session, task.id, p)) is not None}
            result = scan_paths(root, known, paths)
            if not (result.changed or result.touched or result.missing):
                return report + ScanReport(files_seen=result.files_seen, bytes_hashed=result.bytes_hashed)
            return report + self._record_scan(
                task, result, lambda p: get_entry(session, task.id, p), lambda e: put_entry(session, task.id, e),
                lambda *a: queue_pending(session, task.id, *a), targets)

    def _record_scan(self, task: SyncTask, result: ScanResult, get: Callable[[str], Entry | None],
                     put: Callable[[Entry], None], queue: Callable[..., None], targets: list[str]) -> ScanReport:
        report = ScanReport(files_seen=result.files_seen, bytes_hashed=result.bytes_hashed)
        info = task_info(task)
        root = Path(task.root)

        def record(old: Entry | None, new: Entry) -> None:
            put(new)
            if self.hook is None or notify.change_may_be_sent(self.hook, info, new.path, new.deleted):
                queue(new.path, old, new.version, targets)

        for obs in result.touched:
            old = get(obs.path)
            if old is not None:
                put(old.but(mtime_ns=obs.mtime_ns))
        for obs in result.changed:
            assert obs.digest is not None
            old = get(obs.path)
            new = Entry(obs.path, bump(old.version if old else {}, self.me), obs.digest.hash, obs.size,
                        obs.mtime_ns, obs.mtime_ns, self.me, False)
            record(old, new)
            self._remember_content(root, new, obs.digest.signature)
            report.changed += 1
        if not task.backup_mode:  # backup mode: local deletions are neither recorded nor sent
            for path in result.missing:
                old = get(path)
                if old is None or old.deleted:
                    continue
                record(old, Entry(path, bump(old.version, self.me), "", 0, 0, old.modified_ns, self.me, True))
                report.deleted += 1
        return report

    def _remember_content(self, root: Path, entry: Entry, signature: Signature | None) -> None:
        """Keep what later deltas from this content need: a shadow copy or a chunk signature."""
        try:
            if entry.size < SHADOW_MIN:
                return  # tiny files travel whole: a delta would not be smaller
            if entry.size <= BSDIFF_MAX:
                self.objects.put_shadow(entry.hash, root.joinpath(*entry.path.split("/")))
            else:
                if signature is None and self.objects.has_signature(entry.hash):
                    return  # kept already (a prebuilt stream stores it)
                if signature is None:
                    signature = digest_file(root.joinpath(*entry.path.split("/")), with_signature=True).signature
                if signature is not None:
                    self.objects.put_signature(entry.hash, signature)
        except OSError as exc:  # a cache: failing to fill it only makes later deltas bigger
            log.debug("cannot keep object for %s: %s", entry.path, exc)

    # ------------------------------------------------------------------ outgoing
    def pending(self, peer: str) -> list[tuple[str, str, str]]:
        """``(secure_id, path, base_hash)`` of everything pending for ``peer`` in the tasks linked with it."""
        out = []
        with self._lock, self.store.session() as session:
            for task in session.scalars(select(SyncTask)).all():
                if peer in linked_devices(session, task.id):
                    out += [(task.secure_id, item.path, item.base_hash) for item in pending_for(session, task.id, peer)]
        return out

    def outgoing(self, peer: str) -> list[Modification]:
        """Everything pending for ``peer`` in the tasks linked with it, as modification events."""
        return [m for m in self.modifications(peer, self.pending(peer)) if m is not None]

    def modifications(self, peer: str, items: Sequence[tuple[str, str, str]]) -> list[Modification | None]:
        """:meth:`modification` of each ``(secure_id, path, base_hash)`` of ``items`` (as :meth:`pending`
        gives them), read in one index transaction. A path this device has nothing to send for gives None
        and stops being pending for ``peer``."""
        out: list[Modification | None] = []
        with self._lock, self.store.batch():
            for secure_id, path, base_hash in items:
                out.append(self.modification(secure_id, path, base_hash))
            for (secure_id, path, _), message in zip(items, out):  # writes last: the write lock is held briefly
                if message is None:
                    self.drop_pending(secure_id, path, peer)
        return out

    def drop_pending(self, secure_id: str, path: str, peer: str) -> None:
        """Stop owing ``path`` to ``peer``: this device has nothing to send for it (see ``modification``)."""
        with self._lock, self.store.session() as session:
            drop_pending(session, self._ctx(secure_id).id, path, peer)

    def queue_all(self, secure_id: str, peer: str) -> int:
        """The setup queue: make every path of the task (tombstones included) pending for ``peer``, which
        just linked it. Resumable: what is pending survives restarts until acknowledged."""
        self.scan(secure_id)
        with self._lock, self.store.session() as session:
            task = self._task(session, secure_id)
            batch = IndexBatch(session, task.id)
            entries = batch.entries()
            for entry in entries.values():
                batch.queue(entry.path, None, entry.version, [peer])
            return len(entries)

    def modification(self, secure_id: str, path: str, base_hash: str, *, signature: Signature | None = None,
                     reply: bool = False) -> Modification | None:
        """The current state of ``path`` as an event whose delta applies to ``base_hash`` (the receiver's
        content, described by ``signature`` when given). The file is rescanned first so the event never
        announces a version older than the disk."""
        with self._lock:
            ctx = self._ctx(secure_id)
            entry = self._fresh_entry(ctx, path)
            root = ctx.root
        if entry is None or (not entry.deleted and not root.joinpath(*path.split("/")).is_file()):
            return None  # nothing indexed, or a backup-mode deletion: this device cannot send the content
        message = Modification(secure_id, path, entry.version, entry.hash, entry.size, entry.modified_ns,
                               entry.modified_by, entry.deleted, base_hash, None, reply)
        if entry.deleted or entry.hash == base_hash:
            return message
        if not base_hash and signature is None and entry.size > BSDIFF_MAX and not reply:
            # The receiver's content is unknown: announce first, so it can answer with its signature
            # (or that it already has this content) instead of receiving the whole file.
            return message
        message.delta = self._delta_stream(root.joinpath(*path.split("/")), entry, base_hash, signature, message)
        return message

    def _delta_stream(self, file: Path, entry: Entry, base_hash: str, signature: Signature | None,
                      message: Modification) -> Iterator[bytes]:
        # Chosen now, read lazily: the receiver pulls the blocks, so a large file never sits in memory.
        shadow = self.objects.shadow(base_hash) if base_hash and entry.size <= BSDIFF_MAX and signature is None else None
        base_sig = signature or (self.objects.signature(base_hash) if base_hash and shadow is None else None)
        if shadow is None and base_sig is None:
            message.base_hash = ""

        def stream() -> Iterator[bytes]:
            with open(file, "rb") as fh:
                if shadow is not None:
                    yield from encode_bsdiff(shadow, fh.read(BSDIFF_MAX + 1))
                elif base_sig is not None:
                    yield from encode_against(fh, base_sig)
                else:
                    yield from encode_full(fh)

        return stream()

    # ------------------------------------------------------------------ incoming
    def receive(self, peer: str, message: Message) -> list[Message]:
        """Act on ``message`` from device ``peer``; return the answers to send back.

        Raises Refused for a task this device does not share with ``peer`` or an unsafe path; nothing is
        written then.
        """
        with self._lock:
            if isinstance(message, ModificationDone):
                return self._on_done(peer, message)
            if isinstance(message, NeedState):
                return self._on_need_state(peer, message)
            if isinstance(message, Modification):
                return self._on_modification(peer, message)
        raise Refused(f"unknown message {type(message).__name__}")

    def receive_many(self, peer: str, messages: Sequence[Message]) -> list[list[Message] | Exception]:
        """Act on ``messages`` from ``peer`` in order, exactly as :meth:`receive` one by one, but under one
        lock, with the index changes of each run of messages whose delta is all here made in one
        transaction (committed after the folder syncs of their renames), before returning.

        Returns per message its answers, or the exception :meth:`receive` raised for it (the others still
        run): within a transaction each message's changes are savepoints, so one failure never undoes
        another's. A message whose delta is still streaming in is applied on its own, outside any batch
        transaction: holding the index's write lock while waiting on the network could block the very
        thread that feeds the stream.
        """
        results: list[list[Message] | Exception] = []
        with self._lock:
            self._paths = InsideChecker()
            try:
                for run in _runs(messages):
                    if is_streaming(run[0]):
                        self._receive_each(peer, run, results)
                        continue
                    with self.store.batch(), deferred_dir_syncs(), self._staging(peer, run):
                        self._receive_each(peer, run, results)
            finally:
                self._paths = None
        return results

    def _receive_each(self, peer: str, messages: Sequence[Message], results: list[list[Message] | Exception]) -> None:
        for message in messages:
            try:
                results.append(self.receive(peer, message))
            except Exception as exc:  # reported per message by the caller, like receive's own errors
                results.append(exc)

    @contextmanager
    def _staging(self, peer: str, messages: Sequence[Message]) -> Iterator[None]:
        """Build the new content of the batch's small inline modifications in memory, each checked against
        its announced hash, then write them all to durable temp files from several threads
        (:func:`fsio.write_temps`), so that applying them one by one afterwards costs a rename. A staged
        file holds exactly the announced content, so it is right whatever the apply then decides; what
        is not used is removed. At most ``STAGE_MAX`` bytes are held in memory per batch.
        """
        mine: dict[tuple[str, str, str], Path] = {}
        try:
            contents: dict[tuple[str, str, str], tuple[Path, bytes]] = {}
            held = 0
            with self.store.session() as session:
                for m in messages:
                    if held >= STAGE_MAX or not _stageable(m) or (key := (m.secure_id, m.path, m.hash)) in contents:
                        continue
                    built = self._build_in_memory(session, peer, m)
                    if built is not None:
                        contents[key] = built
                        held += len(built[1])
            keys = list(contents)
            temps = write_temps([contents.pop(key) for key in keys], self.staging)
            mine = {key: temp for key, temp in zip(keys, temps) if temp is not None and self._set_ready(key, temp)}
            yield
        finally:
            for key, temp in mine.items():  # used ones were moved away already
                self._discard_ready(key, temp)

    def _build_in_memory(self, session: Session, peer: str, m: Modification) -> tuple[Path, bytes] | None:
        """``m``'s target and announced content, built in memory and verified; None when it cannot be
        built now (apply will then do what it always does)."""
        found = self._target_and_base(session, peer, m)
        if found is None:
            return None
        target, base = found
        out = io.BytesIO()
        try:
            got = apply_delta(m.delta, base, out, expected_size=m.size)
        except (DeltaError, OSError):
            return None
        return (target, out.getvalue()) if got == m.hash else None

    def _target_and_base(self, session: Session, peer: str, m: Modification,
                         paths: InsideChecker | None = None) -> tuple[Path, Path | None] | None:
        """Where ``m`` goes and the file its delta applies to (None: a whole content); None when ``m``
        is refused or its base is not here, which the apply then answers as it always does."""
        try:
            ctx, target = self._checked(peer, m.secure_id, m.path, paths)
        except (Refused, NotFound):
            return None
        if not m.base_hash:
            return target, None
        base = self._base_of(target, get_entry(session, ctx.id, m.path), m)
        return (target, base) if base is not None else None

    def _set_ready(self, key: tuple[str, str, str], temp: Path) -> bool:
        """Record ``temp`` as the content for ``key``; False (and ``temp`` removed) if one is there."""
        with self._ready_lock:
            if key not in self._ready:
                self._ready[key] = temp
                return True
        temp.unlink(missing_ok=True)
        return False

    def prebuild(self, peer: str, m: Modification) -> tuple[str, str, str] | None:
        """Write the content of ``m``, whose delta is still streaming in, to a durable temp file now,
        without the engine lock, so other messages are applied while it arrives; :meth:`receive` then only
        moves it into place. The content is checked against its announced hash, so it is right whatever
        the apply decides, even if the local file changed meanwhile. Returns the key to pass to
        :meth:`discard_prebuilt` once ``m`` was received, or None when nothing was written: refused, no
        base here (the delta is left for the apply, which answers as it always does), or a delta that
        failed or hashed wrong (used up: the apply asks for the whole content again)."""
        if not is_streaming(m) or m.deleted:
            return None
        with self.store.session(own=True) as session:
            found = self._target_and_base(session, peer, m, InsideChecker())
        if found is None:
            return None
        target, base = found
        signature = SignatureBuilder(m.size) if m.size > BSDIFF_MAX else None
        folder = self.staging if self.staging is not None and same_device(self.staging, target.parent) else None
        try:
            temp = self._rebuild(target, m, base, folder=folder, observe=signature.feed if signature else None)
        except (IntegrityError, DeltaError, OSError) as exc:
            log.warning("discarded change of %s from %s: %s", m.path, m.modified_by, exc)
            return None
        if signature is not None:
            try:  # keyed by content: right whatever the apply decides
                self.objects.put_signature(m.hash, signature.signature())
            except OSError:
                pass
        key = (m.secure_id, m.path, m.hash)
        return key if self._set_ready(key, temp) else None

    def discard_prebuilt(self, key: tuple[str, str, str]) -> None:
        """Remove what :meth:`prebuild` wrote for ``key`` if the apply did not use it."""
        self._discard_ready(key)

    def _discard_ready(self, key: tuple[str, str, str], temp: Path | None = None) -> None:
        """Forget and remove the content ready for ``key`` (only if it is ``temp``, when given)."""
        with self._ready_lock:
            if key not in self._ready or (temp is not None and self._ready[key] != temp):
                return
            temp = self._ready.pop(key)
        temp.unlink(missing_ok=True)

    def _checked(self, peer: str, secure_id: str, path: str, paths: InsideChecker | None = None
                 ) -> tuple[TaskContext, Path]:
        try:
            ctx = self._ctx(secure_id)
        except NotFound:
            ctx = None
        if ctx is None or peer not in ctx.linked:
            raise Refused(f"task {secure_id[:12]}… is not shared with device {peer[:12]}…")
        try:
            target = (paths or self._paths or InsideChecker()).join(ctx.root, path)
        except UnsafePath as exc:
            raise Refused(f"unsafe path from {peer[:12]}…: {exc}") from None
        return ctx, target

    def _on_done(self, peer: str, message: ModificationDone) -> list[Message]:
        ctx, _ = self._checked(peer, message.secure_id, message.path)
        with self.store.session() as session:
            acknowledge(session, ctx.id, message.path, peer, message.version)
        return []

    def _on_need_state(self, peer: str, message: NeedState) -> list[Message]:
        self._checked(peer, message.secure_id, message.path)
        signature = None
        if message.signature:
            try:
                signature = Signature.from_bytes(message.signature)
            except ValueError as exc:
                raise Refused(f"bad signature from {peer[:12]}…: {exc}") from None
        answer = self.modification(message.secure_id, message.path, message.have_hash if signature else "",
                                   signature=signature, reply=True)
        return [answer] if answer is not None else []

    def _on_modification(self, peer: str, m: Modification) -> list[Message]:
        ctx, target = self._checked(peer, m.secure_id, m.path)
        local = self._fresh_entry(ctx, m.path)  # a local edit not yet indexed is a version too
        info = ctx.info
        if local is not None and not local.deleted and info.backup_mode and not target.exists():
            # Deleted here in backup mode: unrecorded, but nothing of it is left to keep or to win with.
            local = local.but(deleted=True, hash="", size=0)
        remote = Entry(m.path, dict(m.version), m.hash, m.size, 0, m.modified_ns, m.modified_by, m.deleted)
        local_version = local.version if local else {}
        order = compare(remote.version, local_version)
        if order in (Order.EQUAL, Order.OLDER):
            return [ModificationDone(m.secure_id, m.path, local_version)]
        if order is Order.NEWER:
            return self._take_remote(peer, info, target, local, remote, m, merged=remote.version, relay_to_peer=False)
        return self._resolve_conflict(peer, info, target, local, remote, m)

    def _same_content(self, local: Entry | None, remote: Entry) -> bool:
        if local is None or local.deleted:
            return remote.deleted
        return not remote.deleted and local.hash == remote.hash

    def _take_remote(self, peer: str, info: TaskInfo, target: Path, local: Entry | None, remote: Entry,
                     m: Modification, *, merged: dict[str, int], relay_to_peer: bool) -> list[Message]:
        """Make the remote version this device's version of the path (content, tombstone or just version)."""
        if self._same_content(local, remote):
            assert local is not None or remote.deleted
            new = (local or remote).but(version=merged, modified_ns=remote.modified_ns, modified_by=remote.modified_by)
            if local is None:
                new = new.but(mtime_ns=0)
            self._commit_entry(info, local, new, peer, relay_to_peer)
            return [ModificationDone(m.secure_id, m.path, merged)]
        if remote.deleted:
            try:
                target.unlink()
            except FileNotFoundError:
                pass
            remove_empty_parents(target, info.root)
            self._commit_entry(info, local, remote.but(version=merged, mtime_ns=0), peer, relay_to_peer)
            if self.hook is not None:
                notify.notify_applied(self.hook, info, m.path, True)
            return [ModificationDone(m.secure_id, m.path, merged)]
        signature = SignatureBuilder(m.size) if m.size > BSDIFF_MAX else None
        temp = self._materialize(info, target, local, m, signature)
        if isinstance(temp, NeedState):
            return [temp]
        if temp is None:
            return []
        st = commit_temp(temp, target, remote.modified_ns)
        self._commit_entry(info, local, remote.but(version=merged, mtime_ns=st.st_mtime_ns), peer, relay_to_peer)
        self._remember_content(info.root, remote, signature.signature() if signature and signature.seen else None)
        if self.hook is not None:
            notify.notify_applied(self.hook, info, m.path, False)
        return [ModificationDone(m.secure_id, m.path, merged)]

    def _resolve_conflict(self, peer: str, info: TaskInfo, target: Path, local: Entry | None, remote: Entry,
                          m: Modification) -> list[Message]:
        merged = merge(local.version if local else {}, remote.version)
        if self._same_content(local, remote):
            return self._take_remote(peer, info, target, local, remote, m, merged=merged, relay_to_peer=True)
        assert local is not None
        remote_wins = _winner_key(remote) > _winner_key(local)
        loser = local if remote_wins else remote
        if loser.deleted:  # nothing of the loser to keep
            if remote_wins:
                return self._take_remote(peer, info, target, local, remote, m, merged=merged, relay_to_peer=True)
            self._commit_entry(info, local, local.but(version=merged), peer, relay_to_peer=True)
            return [ModificationDone(m.secure_id, m.path, merged)]
        copy_rel, copy_path, kept = self._conflict_copy(info.secure_id, m.path, loser)
        if remote_wins:
            temp = self._materialize(info, target, local, m)
            if isinstance(temp, NeedState) or temp is None:
                return [temp] if temp else []
            if not kept:
                os.replace(target, copy_path)  # the local loser keeps its bytes under the conflict name
            self.scan(m.secure_id, [copy_rel])
            st = commit_temp(temp, target, remote.modified_ns)
            self._commit_entry(info, local, remote.but(version=merged, mtime_ns=st.st_mtime_ns), peer, True)
            self._remember_content(info.root, remote, None)
        else:
            temp = self._materialize(info, copy_path, None, m)
            if isinstance(temp, NeedState) or temp is None:
                return [temp] if temp else []
            if kept:
                temp.unlink()
            else:
                commit_temp(temp, copy_path, remote.modified_ns)
            self.scan(m.secure_id, [copy_rel])
            self._commit_entry(info, local, local.but(version=merged), peer, relay_to_peer=True)
        if self.hook is not None:
            notify.notify_conflict(self.hook, info, m.path, copy_rel)
        return [ModificationDone(m.secure_id, m.path, merged)]

    def _conflict_copy(self, secure_id: str, path: str, loser: Entry) -> tuple[str, Path, bool]:
        """Where the losing version of ``path`` is kept: (relative path, path, True when that file holds
        the loser's content already, as when another device's copy of this conflict arrived first).

        The name says the loser's device and second. A device can lose twice within one second, and its
        second copy must not be taken for the first (that dropped the second edit): a name held by other
        content gets the loser's hash too, so devices resolving the same conflict still agree on it.
        Raises Refused (nothing written; the event stays pending) if even that name is taken."""
        ctx = self._ctx(secure_id)
        for tag in ("", loser.hash[:8], loser.hash):
            rel = conflict_name(path, loser.modified_ns, loser.modified_by[:7], tag)
            copy = join_inside(ctx.root, rel)
            if not os.path.lexists(copy):
                return rel, copy, False
            held = self._fresh_entry(ctx, rel)
            if held is not None and not held.deleted and held.hash == loser.hash:
                return rel, copy, True
        raise Refused(f"no free name to keep the conflicting version of {path}")

    def _materialize(self, info: TaskInfo, target: Path, local: Entry | None, m: Modification,
                     signature: SignatureBuilder | None = None) -> Path | NeedState | None:
        """``m``'s content in a verified temp file ready to move onto ``target`` (staged ahead, or rebuilt
        now beside it); NEED_STATE when our content is not the delta's base (or the delta fails), None
        when even a requested answer failed."""
        with self._ready_lock:
            ready = self._ready.pop((m.secure_id, m.path, m.hash), None)
        if ready is not None:
            if ready.parent in (target.parent, self.staging):  # a rename away, on the same device
                return ready
            ready.unlink(missing_ok=True)
        base: Path | None = None
        if m.base_hash:
            base = self._base_of(target, local, m)
            if base is None:
                return None if m.reply else self._need_state(info, target, local, m)
        if m.delta is None:
            return None if m.reply else self._need_state(info, target, local, m)
        try:
            temp = self._rebuild(target, m, base, observe=signature.feed if signature is not None else None)
        except (IntegrityError, DeltaError, OSError) as exc:
            log.warning("discarded change of %s from %s: %s", m.path, m.modified_by, exc)
            return None if m.reply else self._need_state(info, target, local, m, whole=True)
        return temp

    def _base_of(self, target: Path, local: Entry | None, m: Modification) -> Path | None:
        """The file ``m``'s delta applies to: ours when it is the delta's base, else the kept copy of
        that base; None when we have neither."""
        if local is not None and not local.deleted and local.hash == m.base_hash and target.is_file():
            return target
        return self.objects.shadow_path(m.base_hash)

    @staticmethod
    def _rebuild(target: Path, m: Modification, base: Path | None, *, folder: Path | None = None,
                 observe: Callable[[bytes | memoryview], None] | None = None) -> Path:
        """``m``'s content in a temp file beside ``target`` (or in ``folder``, on its device), its hash
        checked (IntegrityError otherwise; DeltaError or OSError when the delta or the disk fails)."""
        with atomic_writer(target, folder) as (fh, temp):
            got = apply_delta(m.delta, base, fh, expected_size=m.size, observe=observe)
            if got != m.hash:
                raise IntegrityError(f"{m.path}: content hashes to {got[:12]}…, {m.hash[:12]}… announced")
        return temp

    def _need_state(self, info: TaskInfo, target: Path, local: Entry | None, m: Modification, *,
                    whole: bool = False) -> NeedState:
        if whole or local is None or local.deleted or not target.exists():
            return NeedState(m.secure_id, m.path, "", b"")
        if local.size <= BSDIFF_MAX:
            return NeedState(m.secure_id, m.path, local.hash, b"")
        signature = self.objects.signature(local.hash)
        if signature is None:
            signature = digest_file(target, with_signature=True).signature
        return NeedState(m.secure_id, m.path, local.hash, signature.to_bytes() if signature else b"")

    def _commit_entry(self, info: TaskInfo, old: Entry | None, new: Entry, peer: str, relay_to_peer: bool) -> None:
        """Index ``new`` and queue it for every linked device that may not have it yet."""
        ctx = self._ctx(info.secure_id)
        with self.store.session() as session:
            put_entry(session, ctx.id, new)
            targets = [d for d in ctx.linked if relay_to_peer or d != peer]
            queue_pending(session, ctx.id, new.path, old, new.version, targets)
            if not relay_to_peer:
                acknowledge(session, ctx.id, new.path, peer, new.version)

    # ------------------------------------------------------------------ helpers
    def _task(self, session: Session, secure_id: str) -> SyncTask:
        task = task_row(session, secure_id)
        if task is None:
            raise NotFound(f"no sync task with secure_id {secure_id}")
        return task

    def pending_counts(self, secure_id: str) -> dict[str, int]:
        """Pending event count per device for the task."""
        with self.store.session() as session:
            return pending_counts(session, self._ctx(secure_id).id)
