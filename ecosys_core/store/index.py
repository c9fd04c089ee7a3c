"""The file index of a sync task and its pending events ("retard"), over the store's tables.

All functions take an open session so the engine can change a file's entry and its pending events in
one transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from operator import itemgetter
from typing import Iterable, NamedTuple

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from ..types import TaskInfo
from .tables import (
    Device,
    FileEntry,
    PendingEvent,
    PendingTarget,
    SyncTask,
    TaskDevice,
    utcnow,
)
from .tasks import task_info
from .versions import Order, compare

MODIFICATION = "MODIFICATION"


@dataclass(frozen=True)
class Entry:
    """One file's state in the index."""

    path: str
    version: dict[str, int]
    hash: str
    size: int
    mtime_ns: int
    modified_ns: int
    modified_by: str
    deleted: bool

    def but(self, **changes: object) -> "Entry":
        return replace(self, **changes)  # type: ignore[arg-type]


def _entry(row: FileEntry) -> Entry:
    return Entry(row.path, dict(row.version), row.content_hash, row.size, row.mtime_ns, row.modified_ns,
                 row.modified_by, row.deleted)


def task_row(session: Session, secure_id: str) -> SyncTask | None:
    """The task row with ``secure_id``."""
    return session.scalar(select(SyncTask).where(SyncTask.secure_id == secure_id))


@dataclass(frozen=True)
class TaskRef:
    """A task as the sync engine reads it: its row id (the key of its index) and a snapshot of it."""

    id: int
    info: TaskInfo


def find_task(session: Session, secure_id: str) -> TaskRef | None:
    """The task with ``secure_id`` (None when this device has none)."""
    row = task_row(session, secure_id)
    return None if row is None else TaskRef(row.id, task_info(row))


def tasks_linked_with(session: Session, device_id: str) -> list[TaskRef]:
    """Every task shared with ``device_id``."""
    rows = session.scalars(
        select(SyncTask).join(TaskDevice, TaskDevice.task_id == SyncTask.id)
        .join(Device, TaskDevice.device_id == Device.id).where(Device.device_id == device_id.lower())
        .order_by(SyncTask.id)
    )
    return [TaskRef(row.id, task_info(row)) for row in rows]


def load_entries(session: Session, task_id: int) -> dict[str, Entry]:
    """Every entry of the task, by path."""
    return {row.path: _entry(row) for row in session.scalars(select(FileEntry).where(FileEntry.task_id == task_id))}


def _raw(session: Session):  # type: ignore[no-untyped-def]
    """The sqlite3 connection under ``session``'s transaction.

    The per-file statements below run on it directly: through SQLAlchemy each cost ~0.4 ms, which made
    them most of the time spent syncing small files (bench/sync.py); here they share the transaction.
    """
    return session.connection().connection.driver_connection


def get_entry(session: Session, task_id: int, path: str) -> Entry | None:
    """The entry of ``path``, or None."""
    r = _raw(session).execute(
        "SELECT path, version, content_hash, size, mtime_ns, modified_ns, modified_by, deleted "
        "FROM file_entries WHERE task_id = ? AND path = ?", (task_id, path)).fetchone()
    return Entry(r[0], json.loads(r[1]), r[2], r[3], r[4], r[5], r[6], bool(r[7])) if r else None


_PUT_ENTRY = (
    "INSERT INTO file_entries (task_id, path, version, content_hash, size, mtime_ns, modified_ns, modified_by, "
    "deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, path) DO UPDATE SET "
    "version = excluded.version, content_hash = excluded.content_hash, size = excluded.size, "
    "mtime_ns = excluded.mtime_ns, modified_ns = excluded.modified_ns, modified_by = excluded.modified_by, "
    "deleted = excluded.deleted")


def _entry_row(task_id: int, entry: Entry) -> tuple:
    return (task_id, entry.path, json.dumps(dict(entry.version)), entry.hash, entry.size, entry.mtime_ns,
            entry.modified_ns, entry.modified_by, int(entry.deleted))


def put_entry(session: Session, task_id: int, entry: Entry) -> None:
    """Insert or replace the entry of ``entry.path`` (one upsert statement)."""
    _raw(session).execute(_PUT_ENTRY, _entry_row(task_id, entry))


class FileStat(NamedTuple):
    """The part of an entry a scan compares with the disk."""

    size: int
    mtime_ns: int
    deleted: bool
    hash: str
    settled: bool = False  # its content is known to have stayed since it took this mtime (no racy rehash)


FLUSH_EVERY = 4096  # rows an IndexBatch holds before writing them (100,000 at once: 35 MiB more at the peak)


class IndexBatch:
    """Many entry and pending changes of one task in one session, with the entries read once in bulk
    (a full scan of 20,000 files would otherwise query each file's entry). With ``under`` (a folder,
    '/'-separated, no trailing slash) only the entries below that folder are read: a range of the
    (task, path) index, so a folder's scan costs what the folder holds, not what the task holds."""

    def __init__(self, session: Session, task_id: int, under: str = "") -> None:
        self.session = session
        self.task_id = task_id
        # '0' follows '/': every path below "a/b" sorts in ["a/b/", "a/b0"), in SQLite's binary order too
        self._range = (under + "/", under + "0") if under else None
        self._where = " AND path >= ? AND path < ?" if under else ""
        self._entries: dict[str, Entry] | None = None
        self._puts: dict[str, Entry] = {}
        self._queued: list[tuple[str, Entry | None, dict[str, int], list[str]]] = []
        self._queued_paths: set[str] = set()

    def _params(self) -> tuple:
        return (self.task_id, *self._range) if self._range else (self.task_id,)

    def fingerprints(self) -> dict[str, tuple[int, int]]:
        """``path → (size, mtime_ns)`` of every live (not deleted) entry: all an unchanged file is compared
        with, in the shape the scanner's walk produces, so the two compare as sets."""
        rows = _raw(self.session).execute(
            "SELECT path, size, mtime_ns FROM file_entries WHERE task_id = ? AND deleted = 0" + self._where,
            self._params()).fetchall()
        return dict(zip(map(itemgetter(0), rows), map(itemgetter(1, 2), rows)))

    def stats(self) -> dict[str, FileStat]:
        """What a scan compares with the disk, per path: one light query, no JSON to decode."""
        rows = _raw(self.session).execute(
            "SELECT path, size, mtime_ns, deleted, content_hash FROM file_entries WHERE task_id = ?" + self._where,
            self._params())
        return {r[0]: FileStat(r[1], r[2], bool(r[3]), r[4]) for r in rows}

    def entries(self) -> dict[str, Entry]:
        """Every entry (loaded once, on first use)."""
        if self._entries is None:
            cols = (FileEntry.path, FileEntry.version, FileEntry.content_hash, FileEntry.size, FileEntry.mtime_ns,
                    FileEntry.modified_ns, FileEntry.modified_by, FileEntry.deleted)
            query = select(*cols).where(FileEntry.task_id == self.task_id)
            if self._range:
                query = query.where(FileEntry.path >= self._range[0], FileEntry.path < self._range[1])
            result = self.session.execute(query)
            self._entries = {r[0]: Entry(r[0], dict(r[1]), r[2], r[3], r[4], r[5], r[6], r[7]) for r in result}
        return self._entries

    def get(self, path: str) -> Entry | None:
        return self.entries().get(path)

    def put(self, entry: Entry) -> None:
        """Index ``entry`` (written by :meth:`flush`; :meth:`get` sees it at once)."""
        self.entries()[entry.path] = entry
        self._puts[entry.path] = entry
        if len(self._puts) >= FLUSH_EVERY:
            self.flush()

    def queue(self, path: str, base: Entry | None, version: dict[str, int], targets: Iterable[str]) -> None:
        """:func:`queue_pending`, written by :meth:`flush`, in the order queued."""
        if path in self._queued_paths:  # a path queued twice: the first one's rows first
            self.flush()
        self._queued.append((path, base, dict(version), sorted(set(targets))))
        self._queued_paths.add(path)
        if len(self._queued) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Write the entries and pending events given since the last flush: a few statements for any
        number of files (one statement per file was most of the time a scan of 2,000 new small files
        took before anything could be sent)."""
        raw = _raw(self.session)
        if self._puts:
            raw.executemany(_PUT_ENTRY, [_entry_row(self.task_id, e) for e in self._puts.values()])
            self._puts.clear()
        if self._queued:
            queue_many(self.session, self.task_id, self._queued)
            self._queued.clear()
        self._queued_paths.clear()


def linked_devices(session: Session, task_id: int) -> list[str]:
    """Device ids linked with the task."""
    rows = session.execute(
        select(Device.device_id).join(TaskDevice, TaskDevice.device_id == Device.id).where(TaskDevice.task_id == task_id)
    )
    return sorted(r[0] for r in rows)


def queue_pending(session: Session, task_id: int, path: str, base: Entry | None, version: dict[str, int],
                  targets: Iterable[str]) -> None:
    """Record that ``targets`` still need ``path`` at ``version``.

    One event per path: a newer version supersedes the stored one (collapsed), while the base — what the
    targets were last known to have — stays the oldest, so a delta built from it never assumes too much.
    """
    queue_many(session, task_id, [(path, base, version, targets)])


def queue_many(session: Session, task_id: int,
               items: Iterable[tuple[str, Entry | None, dict[str, int], Iterable[str]]]) -> None:
    """:func:`queue_pending` for each ``(path, base, version, targets)`` of ``items`` (distinct paths), in
    two statements whatever their number."""
    items = [(path, base, version, sorted(set(targets))) for path, base, version, targets in items]
    items = [item for item in items if item[3]]
    if not items:
        return
    raw = _raw(session)
    created = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    # an event already pending keeps its base (the oldest the targets were known to have) and takes the version
    raw.executemany(
        "INSERT INTO pending_events (task_id, path, flag, version, header, payload, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, path, flag) DO UPDATE SET version = excluded.version",
        [(task_id, path, MODIFICATION, json.dumps(version),
          json.dumps({"base_hash": base.hash if base and not base.deleted else "",
                      "base_version": dict(base.version) if base else {}}), b"", created)
         for path, base, version, _ in items])
    raw.executemany(
        "INSERT OR IGNORE INTO pending_targets (event_id, device_id) "
        "SELECT id, ? FROM pending_events WHERE task_id = ? AND path = ? AND flag = ?",
        [(device, task_id, path, MODIFICATION) for path, _, _, targets in items for device in targets])


@dataclass(frozen=True)
class PendingItem:
    """A path a device still has to receive, with the base it was last known to have."""

    path: str
    version: dict[str, int]
    base_hash: str
    announce: bool = False
    event_id: int = 0  # its pending event: where the next page starts (``pending_for``'s ``after``)


def pending_for(session: Session, task_id: int, device_id: str, after: int = 0, limit: int = -1
                ) -> list[PendingItem]:
    """Pending paths of the task for ``device_id``, oldest first: those whose event comes after event
    ``after``, at most ``limit`` (-1: all). Read as plain rows: 100,000 of them as ORM objects took
    over 150 MiB, which the process kept once they were gone."""
    rows = _raw(session).execute(
        "SELECT e.id, e.path, e.version, e.header FROM pending_events e JOIN pending_targets t ON t.event_id = e.id "
        "WHERE e.task_id = ? AND t.device_id = ? AND e.id > ? ORDER BY e.id LIMIT ?",
        (task_id, device_id, after, limit))
    out = []
    for event_id, path, version, header in rows:
        head = json.loads(header) if header else {}
        out.append(PendingItem(path, json.loads(version) if version else {}, str(head.get("base_hash", "")),
                               bool(head.get("announce")), event_id))
    return out


def queue_announce_all(session: Session, task_id: int, device_id: str) -> int:
    """Make every path of the task (tombstones too) pending for ``device_id``, announced: its event
    carries the version and no content, and the device answers with what it has (MODIFICATION_DONE, or
    NEED_STATE naming its content). For a member that may well have it all already, from another member.
    An event already pending for others becomes announced too (a round trip more for them, never wrong)."""
    raw = _raw(session)
    paths = raw.execute("SELECT path, version FROM file_entries WHERE task_id = ?", (task_id,)).fetchall()
    header = json.dumps({"base_hash": "", "base_version": {}, "announce": True})
    stamp = utcnow().strftime("%Y-%m-%d %H:%M:%S.%f")
    raw.executemany("INSERT INTO pending_events (task_id, path, flag, version, header, payload, created_at) "
                    "VALUES (?, ?, ?, ?, ?, x'', ?) ON CONFLICT (task_id, path, flag) DO UPDATE SET "
                    "header = json_set(header, '$.announce', json('true'))",
                    [(task_id, path, MODIFICATION, version, header, stamp) for path, version in paths])
    raw.execute("INSERT OR IGNORE INTO pending_targets (event_id, device_id) SELECT id, ? FROM pending_events "
                "WHERE task_id = ? AND flag = ?", (device_id, task_id, MODIFICATION))
    return len(paths)


def acknowledge(session: Session, task_id: int, path: str, device_id: str, version: dict[str, int]) -> bool:
    """``device_id`` has ``path`` at ``version`` (MODIFICATION_DONE): drop it from devices_to_patch when that
    covers the pending version; drop the event when nobody is left. True if something was dropped."""
    raw = _raw(session)
    found = raw.execute("SELECT id, version FROM pending_events WHERE task_id = ? AND path = ? AND flag = ?",
                        (task_id, path, MODIFICATION)).fetchone()
    if found is None or compare(version, json.loads(found[1])) not in (Order.EQUAL, Order.NEWER):
        return False
    return _drop_target(raw, found[0], device_id)


def _drop_target(raw, event_id: int, device_id: str) -> bool:  # type: ignore[no-untyped-def]
    if not raw.execute("DELETE FROM pending_targets WHERE event_id = ? AND device_id = ?", (event_id, device_id)).rowcount:
        return False
    if not raw.execute("SELECT 1 FROM pending_targets WHERE event_id = ? LIMIT 1", (event_id,)).fetchone():
        raw.execute("DELETE FROM pending_events WHERE id = ?", (event_id,))
    return True


def drop_pending(session: Session, task_id: int, path: str, device_id: str) -> bool:
    """Give up sending ``path`` to ``device_id`` (this device no longer has what it would send)."""
    raw = _raw(session)
    found = raw.execute("SELECT id FROM pending_events WHERE task_id = ? AND path = ? AND flag = ?",
                        (task_id, path, MODIFICATION)).fetchone()
    return _drop_target(raw, found[0], device_id) if found else False


def pending_counts(session: Session, task_id: int) -> dict[str, int]:
    """Pending event count per device id for the task."""
    rows = session.execute(
        select(PendingTarget.device_id, func.count()).join(PendingEvent)
        .where(PendingEvent.task_id == task_id).group_by(PendingTarget.device_id)
    )
    return {device: count for device, count in rows}


def drop_pending_for(session: Session, task_id: int, device_id: str) -> None:
    """Forget everything pending for ``device_id`` in the task (the link was removed)."""
    ids = select(PendingEvent.id).where(PendingEvent.task_id == task_id)
    session.execute(delete(PendingTarget).where(PendingTarget.device_id == device_id, PendingTarget.event_id.in_(ids)))
