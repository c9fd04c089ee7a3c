"""The outbox: what this device owes each peer (the seed's retard) and the events that carry it.

A pending item is ``(secure_id, path, base_hash)``: the peer still needs ``path`` and last had the
content hashing to ``base_hash``. The event built for it carries the path's current version and a delta
chosen now and read lazily, so a large file never sits in memory.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence

from ..errors import NotFound, UnsafePath
from ..store import Store
from ..store.index import (
    Entry,
    IndexBatch,
    drop_pending,
    find_task,
    pending_counts,
    pending_for,
    tasks_linked_with,
)
from .chunking import Signature
from .context import TaskContexts
from .delta import BSDIFF_MAX, encode_against, encode_bsdiff, encode_from_signatures, encode_full
from .local import LocalChanges
from .messages import Modification, SignatureTrailer
from .objects import ObjectStore


class PendingItem(NamedTuple):
    """A path a peer is owed: the version pending for it, and the content it was last known to have."""

    secure_id: str
    path: str
    base_hash: str
    version: dict[str, int]
    announce: bool = False  # send the version only; the peer says what it has
    cursor: tuple[int, int] = (0, 0)  # (task id, event id): where the next page of pending starts


class Outbox:
    """Pending events per peer and the modification events that settle them."""

    def __init__(self, store: Store, objects: ObjectStore, contexts: TaskContexts, local: LocalChanges,
                 lock: threading.RLock) -> None:
        self.store = store
        self.objects = objects
        self.contexts = contexts
        self.local = local
        self._lock = lock

    def pending(self, peer: str, after: tuple[int, int] = (0, 0), limit: int | None = None) -> list[PendingItem]:
        """What is pending for ``peer`` in the tasks linked with it, but for the tasks that wait (their
        app runs, their ignore patterns are broken): what they owe stays pending until they go on.
        A page at a time with ``limit``: the items after the ``cursor`` ``after`` (the last one's of the
        page before), so 100,000 pending paths are never all in memory at once."""
        out: list[PendingItem] = []
        after_task, after_event = after
        with self._lock, self.store.session() as session:
            for task in sorted(tasks_linked_with(session, peer), key=lambda t: t.id):
                if task.id < after_task or self.contexts.hold(task.info) is not None:
                    continue
                room = -1 if limit is None else limit - len(out)
                out += [PendingItem(task.info.secure_id, item.path, item.base_hash, item.version, item.announce,
                                    (task.id, item.event_id))
                        for item in pending_for(session, task.id, peer, after_event if task.id == after_task else 0,
                                                room)]
                if limit is not None and len(out) >= limit:
                    break
        return out

    def outgoing(self, peer: str) -> list[Modification]:
        """Everything pending for ``peer`` in the tasks linked with it, as modification events."""
        return [m for m in self.modifications(peer, self.pending(peer)) if m is not None]

    def modifications(self, peer: str, items: Sequence[PendingItem]) -> list[Modification | None]:
        """:meth:`modification` of each item of ``items`` (as :meth:`pending` gives them), read in one
        index transaction. A path this device has nothing to send for gives None and stops being pending
        for ``peer``."""
        out: list[Modification | None] = []
        with self._lock, self.store.batch():
            for item in items:
                out.append(self.modification(item.secure_id, item.path, item.base_hash,
                                             announce=item.announce))
            for item, message in zip(items, out):  # writes last: the write lock is held briefly
                if message is None:
                    self.drop_pending(item.secure_id, item.path, peer)
        return out

    def drop_pending(self, secure_id: str, path: str, peer: str) -> None:
        """Stop owing ``path`` to ``peer``: this device has nothing to send for it (see ``modification``)."""
        with self._lock, self.store.session() as session:
            drop_pending(session, self.contexts.get(secure_id).id, path, peer)

    def queue_all(self, secure_id: str, peer: str) -> int:
        """The setup queue: make every path of the task (tombstones included) pending for ``peer``, which
        just linked it. Resumable: what is pending survives restarts until acknowledged."""
        self.local.scan(secure_id)
        with self._lock, self.store.session() as session:
            task = find_task(session, secure_id)
            if task is None:
                raise NotFound(f"no sync task with secure_id {secure_id}")
            if peer not in self.contexts.get(secure_id).linked:
                return 0  # not (or no longer) a member this task syncs with: nothing to owe it
            batch = IndexBatch(session, task.id)
            entries = batch.entries()
            for entry in entries.values():
                batch.queue(entry.path, None, entry.version, [peer])
            batch.flush()
            return len(entries)

    def pending_counts(self, secure_id: str) -> dict[str, int]:
        """Pending event count per device for the task."""
        with self.store.session() as session:
            return pending_counts(session, self.contexts.get(secure_id).id)

    def modification(self, secure_id: str, path: str, base_hash: str, *, signature: Signature | None = None,
                     reply: bool = False, announce: bool = False) -> Modification | None:
        """The current state of ``path`` as an event whose delta applies to ``base_hash`` (the receiver's
        content, described by ``signature`` when given). The file is rescanned first so the event never
        announces a version older than the disk. ``announce``: no content at all; the receiver answers
        with what it has."""
        with self._lock:
            ctx = self.contexts.get(secure_id)
            if self.contexts.ignored(ctx, path):
                return None  # ignored here since it was queued: it stays on this device
            entry = self.local.fresh_entry(ctx, path)
            try:
                file = ctx.places.path(path)
            except UnsafePath:
                return None  # in none of the task's places any more (its grapin changed)
        if entry is None or (not entry.deleted and not file.is_file()):
            return None  # nothing indexed, or a backup-mode deletion: this device cannot send the content
        message = Modification(secure_id, path, entry.version, entry.hash, entry.size, entry.modified_ns,
                               entry.modified_by, entry.deleted, base_hash, None, reply)
        if entry.deleted or entry.hash == base_hash or (announce and not reply and signature is None):
            return message
        if not base_hash and signature is None and entry.size > BSDIFF_MAX and not reply:
            # The receiver's content is unknown: announce first, so it can answer with its signature
            # (or that it already has this content) instead of receiving the whole file.
            return message
        message.delta = self._delta_stream(file, entry, base_hash, signature, message)
        return message

    def _delta_stream(self, file: Path, entry: Entry, base_hash: str, signature: Signature | None,
                      message: Modification) -> Iterator[bytes]:
        # Chosen now, read lazily: the receiver pulls the blocks, so a large file never sits in memory.
        shadow = self.objects.shadow(base_hash) if base_hash and entry.size <= BSDIFF_MAX and signature is None else None
        base_sig = signature or (self.objects.signature(base_hash) if base_hash and shadow is None else None)
        if shadow is None and base_sig is None:
            message.base_hash = ""

        # ours, kept by the scan that found this content: only the chunks the receiver lacks are read
        own_sig = self.objects.signature(entry.hash) if base_sig is not None else None
        if own_sig is not None and (own_sig.params != base_sig.params or own_sig.size != entry.size):
            own_sig = None
        # A whole large content ends with its signature, kept by the scan that found it: the receiver
        # would otherwise cut and digest every byte again (0.14-0.32 s of its CPU per 256 MiB, and its
        # peak of memory: docs/decisions.md, "Stop 31").
        message.signed = shadow is None and base_sig is None and entry.size > BSDIFF_MAX \
            and self.objects.has_signature(entry.hash)

        def stream() -> Iterator[bytes]:
            with open(file, "rb") as fh:
                if shadow is not None:
                    yield from encode_bsdiff(shadow, fh.read(BSDIFF_MAX + 1))
                elif base_sig is not None and own_sig is not None:
                    yield from encode_from_signatures(
                        fh, own_sig, base_sig, lambda start, end: self.objects.grid_blocks(base_hash, start, end))
                elif base_sig is not None:
                    yield from encode_against(fh, base_sig)
                else:
                    yield from encode_full(fh)
            if message.signed and (kept := self.objects.signature_bytes(entry.hash)) is not None:
                yield SignatureTrailer(kept)

        return stream()
