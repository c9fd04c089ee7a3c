"""Local changes: bring a task's index up to date with its folder and keep what later deltas need.

Every change found bumps this device's counter in the path's version vector and is queued for the
task's linked devices (unless a plugin's ``change_about_to_send`` says no).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar

from pluggy import HookRelay

from ..errors import NotFound, UnsafePath
from ..store import Store
from ..store.index import (
    Entry,
    FileStat,
    IndexBatch,
    TaskRef,
    find_task,
    get_entry,
    linked_devices,
    put_entry,
    queue_pending,
)
from ..store.versions import bump
from . import notify
from .chunking import Signature, digest_file
from .context import TaskContext, TaskContexts, short_id
from .delta import BSDIFF_MAX
from .objects import ObjectStore
from .places import Places
from .scanner import (
    POSTPONE_MAX,
    RACY_NS,
    Observation,
    ScanResult,
    indexable_name,
    read_ahead,
    scan_paths,
    scan_tree,
    settled_after,
)

log = logging.getLogger(__name__)
# A scan that finds more changed files than this records and queues that many, lets them go out, then reads
# the next (four times as many each time, at most POSTPONED_STEP_MAX) outside the engine lock, so the
# sender can take the lock to send meanwhile: the first small file of a new tree left 0.3 s after the scan
# began, once all 2,000 were read, and the receiving side, the slower one, waited for it until then.
FIRST_RECORDED = 256
POSTPONED_STEP_MAX = 4096
WHOLE_SCAN_WAIT = 120.0  # seconds a watcher's scan waits for a whole scan of its task before going on
SHADOW_MIN = 16 << 10  # smaller files travel whole: a delta would not be smaller


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


@functools.lru_cache(maxsize=256)
def home_inside(root: Path, home: Path) -> tuple[str, ...]:
    """``(rel + "/",)`` when ECOSYS_HOME lies at ``rel`` inside the task ``root`` (a home moved there after
    the task was made), else ``()``: Ecosys's own state is never indexed, so never synced. Remembered
    per (root, home): a scan runs for every racy file sent, and resolving both paths costs a dozen
    system calls; a home does not move under a running daemon."""
    try:
        rel = Path(os.path.realpath(home)).relative_to(os.path.realpath(root))
    except ValueError:
        return ()
    return (rel.as_posix() + "/",) if rel.parts else ("",)  # the root itself: nothing of it is the task's


def home_excluded(places: Places, home: Path) -> tuple[str, ...]:
    """:func:`home_inside` for each folder of a task's places, as prefixes of the task's paths."""
    if not places.several:
        return home_inside(places.root, home)
    out: list[str] = []
    for name, part in places.parts.items():
        if not part.file:
            out += [f"{name}/{rel}" for rel in home_inside(part.path, home)]
    return tuple(out)


def _outermost(folders: Iterable[str]) -> list[str]:
    """``folders`` without those inside another one of them ("" stands for the root, holding all)."""
    out: list[str] = []
    for folder in sorted(set(folders)):  # a folder sorts before everything inside it
        if not any(folder == kept or folder.startswith(kept + "/") or not kept for kept in out):
            out.append(folder)
    return out


_Leaving = TypeVar("_Leaving", ScanResult, "_Left")


@dataclass
class _Left:
    """What a part of a scan left for later: the large files being read (their paths and the reads) and
    the smaller files not read yet (path, rel, size)."""

    deferred: list[str] = field(default_factory=list)
    hashing: list[Future] = field(default_factory=list)
    postponed: list[tuple[Path, str, int]] = field(default_factory=list)

    def take(self, result: _Leaving) -> _Leaving:
        """Add what ``result`` left; return ``result``."""
        self.deferred += result.deferred
        self.hashing += result.hashing
        self.postponed += result.postponed
        return result


def _budget_left(first: int | None, result: ScanResult, left: _Left) -> int | None:
    """What is left of a scan's ``first`` once ``result`` (one of its folders) recorded its changes: the
    moved-in folders of a new tree come to a watcher's scan as one folder each (fifty of forty files in
    the bench), and a budget per folder read the whole tree under the engine lock (0.17 s in which
    nothing could be sent). None (no limit) once it postponed ``POSTPONE_MAX`` files: the rest of a tree
    that large is read as it comes, as :func:`scanner._observe_all` does within one folder."""
    if first is None or len(left.postponed) >= POSTPONE_MAX:
        return None
    return max(0, first - len(result.changed))


class LocalChanges:
    """Records this device's own edits in the index (scans) and keeps the objects deltas need."""

    def __init__(self, store: Store, objects: ObjectStore, contexts: TaskContexts, device_id: str,
                 hook: HookRelay | None, lock: threading.RLock) -> None:
        self.store = store
        self.objects = objects
        self.contexts = contexts
        self.me = short_id(device_id)
        self.hook = hook
        self._lock = lock
        self._patterns_seen: dict[str, int] = {}  # per task: the ignore patterns' generation of its last full scan
        # (task, path) → (size, mtime_ns) of files modified within RACY_NS but hashed after they settled
        # (Observation.settled): fresh_entry trusts those without hashing them again
        self._settled: dict[tuple[str, str], tuple[int, int]] = {}
        # called (in the scanning thread) when a scan has queued changes and goes on reading large files
        self.on_queued: Callable[[], None] | None = None
        self._whole_scans: dict[str, threading.Event] = {}  # per task: set when its running whole scan ends

    def scan(self, secure_id: str, paths: Iterable[str] | None = None, *, folders: Iterable[str] = (),
             patient: bool = True) -> ScanReport:
        """Bring the index of task ``secure_id`` up to date with its folder: all of it, or only ``paths``
        and the subtrees of ``folders`` ('/'-separated, relative to the root) when either is given.
        ``patient=False`` (a watcher's scan) leaves a file that was written while it was read to the
        event that write brings (scanner.STEADY_TRIES). Every
        local change bumps this device's counter and is queued for the linked devices. Paths the task's
        ignore patterns name are left alone; when the patterns changed since the last whole scan, this
        scan is a whole one. Raises IgnoreFileError (nothing scanned) while they are broken; while the
        task's app runs nothing is scanned (:meth:`SyncEngine.resumed` tells when it stopped).

        Large files are read in helper threads; when smaller ones changed too, those are indexed and
        queued first, :attr:`on_queued` is called so they can go out, and the large ones are indexed
        once read, outside the engine lock meanwhile (a scan of 2,000 small files and two of 128 MiB
        sent nothing for the half second the two took). Of many changed files, the first
        ``FIRST_RECORDED`` are indexed and queued (and :attr:`on_queued` called) before the next are read,
        four times as many at each step, outside the engine lock (:func:`scanner.read_ahead`).

        A watcher's scan (``patient=False``; its thread never holds the engine lock) of a task whose whole
        scan is running in another thread waits for that one to end, at most ``WHOLE_SCAN_WAIT`` seconds:
        the folders moved into a task come to it while that scan reads them, and it read them a second
        time, under the engine lock, by parts, while the sender waited for the lock to send them."""
        if paths is None and not folders:
            with self._whole_scan(secure_id):
                return self._scan_steps(secure_id, paths, folders, patient)
        running = self._whole_scans.get(secure_id)
        if running is not None and not patient:
            running.wait(WHOLE_SCAN_WAIT)
        return self._scan_steps(secure_id, paths, folders, patient)

    @contextmanager
    def _whole_scan(self, secure_id: str) -> Iterator[None]:
        """Mark a whole scan of ``secure_id`` as running in this block (the first of two at once marks it)."""
        done = threading.Event()
        mine = self._whole_scans.setdefault(secure_id, done) is done
        try:
            yield
        finally:
            if mine:
                del self._whole_scans[secure_id]
                done.set()

    def _scan_steps(self, secure_id: str, paths: Iterable[str] | None, folders: Iterable[str],
                    patient: bool) -> ScanReport:
        """:meth:`scan`'s work: its parts, the first ones under the engine lock while the rest is read."""
        report, left = self._scan_part(secure_id, paths, folders, patient, defer=True, first=FIRST_RECORDED)
        step = FIRST_RECORDED
        while left.postponed:  # what was queued goes out while the next are read, outside the engine lock
            self._announce(report)
            step = min(step * 4, POSTPONED_STEP_MAX)
            chunk, left.postponed = left.postponed[:step], left.postponed[step:]
            read_ahead(chunk, patient)
            more, more_left = self._scan_part(secure_id, [rel for _, rel, _ in chunk], (), patient, defer=True)
            report += ScanReport(0, more.bytes_hashed, more.changed, more.deleted)
            left.take(more_left)
        if not left.deferred:
            return report
        self._announce(report)
        for future in left.hashing:
            if future.exception() is not None:  # read again below, where its error is handled as usual
                log.debug("reading a large file ahead failed: %s", future.exception())
        later, _ = self._scan_part(secure_id, left.deferred, (), patient, defer=False)
        return report + ScanReport(0, later.bytes_hashed, later.changed, later.deleted)

    def _announce(self, report: ScanReport) -> None:
        """Tell :attr:`on_queued` that ``report``'s changes are queued, while the scan goes on."""
        if (report.changed or report.deleted) and self.on_queued is not None:
            self.on_queued()

    def _scan_part(self, secure_id: str, paths: Iterable[str] | None, folders: Iterable[str],
                   patient: bool, defer: bool, first: int | None = None) -> tuple[ScanReport, "_Left"]:
        """:meth:`scan` under the engine lock; with ``defer``, without waiting for the large files being
        read when there are others, and reading only the ``first`` smaller changed files (None: all),
        however many folders it scans: what it indexed, and what it left for later (:class:`_Left`)."""
        left = _Left()
        with self._lock, self.store.session() as session:
            task = find_task(session, secure_id)
            if task is None:
                raise NotFound(f"no sync task with secure_id {secure_id}")
            places = Places.of(task.info)
            ignores = self.contexts.ignores(task.info)
            if self.contexts.running.reason(task.info) is not None:
                self.contexts.hold(task.info)  # its app runs: its files are taken once it stops
                return ScanReport(), left
            targets = linked_devices(session, task.id)
            excluded = home_excluded(places, self.store.home)
            folders = _outermost(folders)
            patterns_moved = self._patterns_seen.get(secure_id, ignores.generation) != ignores.generation
            if (paths is None and not folders) or "" in folders or patterns_moved:
                batch = IndexBatch(session, task.id)
                result = left.take(scan_tree(places, batch.fingerprints, batch.stats, excluded=excluded,
                                             ignores=ignores, patient=patient, defer=defer, first=first))
                self._patterns_seen[secure_id] = ignores.generation
                # Under the lock no write of ours is in flight: these are leftovers of a crash.
                for temp in result.stale_temp:
                    temp.unlink(missing_ok=True)
                report = self._record(task, result, batch.get, batch.put, batch.queue, targets)
                batch.flush()
                return report, left
            report = ScanReport()
            for folder in folders:  # a folder made, moved or removed: what is below it, as a whole scan sees it
                batch = IndexBatch(session, task.id, under=folder)
                result = left.take(scan_tree(places, batch.fingerprints, batch.stats, under=folder,
                                             excluded=excluded, ignores=ignores, patient=patient, defer=defer,
                                             first=first))
                report += self._record(task, result, batch.get, batch.put, batch.queue, targets)
                batch.flush()
                first = _budget_left(first, result, left)
            paths = [p for p in paths or () if not any(p.startswith(f + "/") for f in folders) and indexable_name(p)]
            known = {p: FileStat(e.size, e.mtime_ns, e.deleted, e.hash,
                                 self._settled.get((secure_id, p)) == (e.size, e.mtime_ns))
                     for p in paths if (e := get_entry(session, task.id, p)) is not None}
            result = left.take(scan_paths(places, known, paths, excluded, ignores, patient, defer=defer,
                                          defer_alone=bool(report.changed or report.deleted), first=first))
            if not (result.changed or result.touched or result.missing):
                return report + ScanReport(files_seen=result.files_seen, bytes_hashed=result.bytes_hashed), left
            return report + self._record(
                task, result, lambda p: get_entry(session, task.id, p), lambda e: put_entry(session, task.id, e),
                lambda *a: queue_pending(session, task.id, *a), targets), left

    def _record(self, task: TaskRef, result: ScanResult, get: Callable[[str], Entry | None],
                put: Callable[[Entry], None], queue: Callable[..., None], targets: list[str]) -> ScanReport:
        """Index what ``result`` found and queue each change for ``targets``."""
        report = ScanReport(files_seen=result.files_seen, bytes_hashed=result.bytes_hashed)
        info = task.info
        places = Places.of(info)

        def record(old: Entry | None, new: Entry) -> None:
            put(new)
            if self.hook is None or notify.change_may_be_sent(self.hook, info, new.path, new.deleted):
                queue(new.path, old, new.version, targets)
            else:
                log.info("task %s: %s stays on this device (a plugin said not to send it)", info.name, new.path)

        for obs in result.touched:
            self._note_settled(info.secure_id, obs)
            old = get(obs.path)
            if old is not None:
                put(old.but(mtime_ns=obs.mtime_ns))
        for obs in result.changed:
            assert obs.digest is not None
            self._note_settled(info.secure_id, obs)
            old = get(obs.path)
            new = Entry(obs.path, bump(old.version if old else {}, self.me), obs.digest.hash, obs.size,
                        obs.mtime_ns, obs.mtime_ns, self.me, False)
            record(old, new)
            if old is not None and old.hash:
                self.objects.keep_warm(old.hash)  # the delta for this change is made against it
            self.remember_content(places.path(new.path), new, obs.digest.signature, obs.digest.grid)
            report.changed += 1
        if not info.backup_mode:  # backup mode: local deletions are neither recorded nor sent
            for path in result.missing:
                old = get(path)
                if old is None or old.deleted:
                    continue
                record(old, Entry(path, bump(old.version, self.me), "", 0, 0, old.modified_ns, self.me, True))
                report.deleted += 1
        return report

    def _note_settled(self, secure_id: str, obs: Observation) -> None:
        if obs.settled():
            self._remember_settled(secure_id, obs.path, obs.size, obs.mtime_ns)

    def _remember_settled(self, secure_id: str, path: str, size: int, mtime_ns: int) -> None:
        if time.time_ns() - mtime_ns <= RACY_NS:  # only files changed in the last RACY_NS matter
            if len(self._settled) >= 4096:
                self._settled.clear()
            self._settled[(secure_id, path)] = (size, mtime_ns)

    def note_written(self, secure_id: str, path: str, st: os.stat_result, mtime_ns: int, renamed_ns: int) -> None:
        """The engine renamed content it knows into ``path`` at ``renamed_ns`` (taken just before the
        rename) after giving it ``mtime_ns``; ``st`` is the file's stat taken after the rename. If the
        mtime is still the one given, and lies more than a timestamp step before the rename, any write
        since the rename would have moved it: the file is what the engine wrote, and the scan its watcher
        event brings need not hash it again (128 MiB: 0.2 s per received change)."""
        if st.st_mtime_ns == mtime_ns and settled_after(mtime_ns, renamed_ns):
            self._remember_settled(secure_id, path, st.st_size, mtime_ns)

    def fresh_entry(self, ctx: TaskContext, path: str) -> Entry | None:
        """The entry of ``path`` once the disk agrees with it (rescanning that path only if it does not):
        a local edit not yet indexed is a version too."""
        with self.store.reading() as session:
            entry = get_entry(session, ctx.id, path)
        try:
            st = os.lstat(ctx.places.path(path))
        except (OSError, UnsafePath):
            st = None
        if entry is None or entry.deleted:
            clean = st is None
        else:
            # a file changed just now was hashed moments ago (the scan that queued it): not again
            clean = (st is not None and st.st_size == entry.size and st.st_mtime_ns == entry.mtime_ns
                     and (time.time_ns() - st.st_mtime_ns > RACY_NS
                          or self._settled.get((ctx.info.secure_id, path)) == (st.st_size, st.st_mtime_ns))
                     ) or (st is None and ctx.info.backup_mode)
        if clean:
            return entry
        self.scan(ctx.info.secure_id, [path])
        with self.store.reading() as session:
            return get_entry(session, ctx.id, path)

    def remember_content(self, path: Path, entry: Entry, signature: Signature | None,
                         grid: bytes | bytearray | None = None) -> None:
        """Keep what later deltas from ``entry``'s content (the file at ``path``) need: a shadow copy, or
        a chunk signature and grid digests (:mod:`grid`; without ``signature``, both are taken here
        unless a signature is kept already)."""
        try:
            if entry.size < SHADOW_MIN:
                return
            if entry.size <= BSDIFF_MAX:
                self.objects.put_shadow(entry.hash, path)
            else:
                if signature is None and self.objects.has_signature(entry.hash):
                    return  # kept already (a prebuilt stream stores it, and the grid beside it)
                if signature is None:
                    digest = digest_file(path, with_signature=True)
                    signature, grid = digest.signature, digest.grid
                if signature is not None:
                    self.objects.put_signature(entry.hash, signature)
                if grid is not None:
                    self.objects.put_grid(entry.hash, grid)
        except OSError as exc:  # a cache: failing to fill it only makes later deltas bigger
            log.debug("cannot keep object for %s: %s", entry.path, exc)
