"""The sync engine: one device's tasks kept in step with its peers. No sockets here.

It takes messages in (:meth:`SyncEngine.receive`) and gives messages out (:meth:`SyncEngine.outgoing`),
so devices can be tested in one process and driven unchanged by the network layer. DESIGN.md §1–2. The
jobs live in their own modules and the engine composes them:

- ``local``: scans record this device's edits; ``outbox``: what each peer is owed and its events;
- ``staging``: content written ahead of its apply; ``rules``: the pure decision for a remote version;
- here: receiving and applying: a delta is applied only on the content it was made from, the result is
  verified against its hash and moved into place atomically, then indexed (a crash leaves old or new,
  and a rescan repairs); conflicts keep both versions.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from pluggy import HookRelay

from ..device_ids import short_id_text
from ..errors import ChangeRefused, IntegrityError, UnsafePath
from ..malloc_arenas import give_back_free_memory
from ..safe_paths import InsideChecker, check_relative_path
from ..store import Store
from ..store.index import Entry, acknowledge, put_entry, queue_pending
from ..types import TaskInfo
from . import notify
from .chunking import Signature, digest_file
from .conflicts import Conflict, keep, list_conflicts, original_path
from .context import TaskContext, TaskContexts, short_id
from .delta import BSDIFF_MAX, DeltaError
from .fsio import commit_temp, deferred_dir_syncs, held_open, remove_empty_parents
from .local import LocalChanges, ScanReport
from .membership import Membership
from .messages import Members, Message, Modification, ModificationDone, NeedState, is_streaming
from .objects import ObjectStore
from .outbox import Outbox, PendingItem
from .rules import Action, Decision, decide, same_content
from .staging import NewSignature, ReadyContents, ReadyKey, Staging, base_of, new_signature, rebuild

log = logging.getLogger(__name__)

__all__ = ["SyncEngine", "ScanReport", "TaskContext", "short_id"]


def _alone(message: Message) -> bool:
    """Applied outside a batch: a delta still streaming in, or a member list (what follows it may
    depend on it, and a batch's changes are not seen by the task cache until committed)."""
    return is_streaming(message) or isinstance(message, Members)


def _runs(messages: Sequence[Message]) -> Iterator[Sequence[Message]]:
    """``messages`` cut into runs of messages that are all here, each streaming one being a run alone."""
    start = 0
    for i, m in enumerate(messages):
        if _alone(m):
            if i > start:
                yield messages[start:i]
            yield messages[i:i + 1]
            start = i + 1
    if start < len(messages):
        yield messages[start:]


class SyncEngine:
    """One device's engine over its store and object cache. Thread-safe: one lock guards every
    read-compare-write of the index against the disk, so the engine's own writes are never mistaken for
    local edits (the seed's receiving_update) and a user edit is always indexed before being overwritten.

    ``staging``: a folder of this device's own (``ECOSYS_HOME/staging``) where received content waits
    before being moved into a task folder (see ``fsio.write_temps``); None writes beside the target."""

    def __init__(self, store: Store, objects: ObjectStore, device_id: str, hook: HookRelay | None = None,
                 staging: Path | None = None) -> None:
        self.store = store
        self.objects = objects
        self.device_id = device_id
        self.me = short_id(device_id)
        self.hook = hook
        self._lock = threading.RLock()
        self.contexts = TaskContexts(store)
        self.local = LocalChanges(store, objects, self.contexts, device_id, hook, self._lock)
        self.outbox = Outbox(store, objects, self.contexts, self.local, self._lock)
        self._ready = ReadyContents()
        self.staging = Staging(store, objects, self.contexts, staging, self._ready)
        self.members = Membership(store, device_id, self._lock)
        self._paths: InsideChecker | None = None  # during receive_many: folders already checked
        self._owed_back: set[str] = set()  # peers whose own change produced something for them (a merge, a conflict copy)

    # -- the parts' entry points, for callers that hold one engine per device ---------------------
    def scan(self, secure_id: str, paths: Iterable[str] | None = None, *, folders: Iterable[str] = (),
             patient: bool = True) -> ScanReport:
        """:meth:`LocalChanges.scan`: index this device's edits of the task and queue them."""
        return self.local.scan(secure_id, paths, folders=folders, patient=patient)

    def when_queued(self, callback: Callable[[], None] | None) -> None:
        """Call ``callback`` (in the scanning thread) when a scan has queued changes for the linked devices
        and is still reading large files: what it queued can go out meanwhile."""
        self.local.on_queued = callback

    def conflicts(self, secure_id: str, offset: int = 0, limit: int = 100) -> tuple[int, list[Conflict]]:
        """:func:`conflicts.list_conflicts`: the task's conflict copies, a page at a time."""
        return list_conflicts(self.store, secure_id, offset, limit)

    def resolve_conflict(self, secure_id: str, copy: str, which: str) -> ScanReport:
        """Keep the conflict copy ``copy`` ("copy": it replaces the version at its path) or the version at
        the path ("current": the copy goes), then index and queue both paths, under the lock so no
        received change lands between the two. EcosysError for a path that is not a conflict copy."""
        try:
            original = original_path(check_relative_path(copy))
        except UnsafePath as exc:
            raise ChangeRefused(str(exc)) from None
        if original is None:
            raise ChangeRefused(f"{copy!r} is not a conflict copy")
        with self._lock:
            ctx = self.contexts.get(secure_id)
            try:
                copy_file, original_file = ctx.places.path(copy), ctx.places.path(original)
            except UnsafePath as exc:
                raise ChangeRefused(str(exc)) from None
            keep(copy_file, original_file, which)
            return self.local.scan(secure_id, [copy, original])

    def pending(self, peer: str, after: tuple[int, int] = (0, 0), limit: int | None = None) -> list[PendingItem]:
        """:meth:`Outbox.pending`: what ``peer`` is owed (a page of it with ``limit``)."""
        return self.outbox.pending(peer, after, limit)

    def outgoing(self, peer: str) -> list[Modification]:
        """:meth:`Outbox.outgoing`: what ``peer`` is owed, as modification events."""
        return self.outbox.outgoing(peer)

    def modifications(self, peer: str, items: Sequence[PendingItem]) -> list[Modification | None]:
        """:meth:`Outbox.modifications`: the events of pending ``items``."""
        return self.outbox.modifications(peer, items)

    def queue_all(self, secure_id: str, peer: str) -> int:
        """:meth:`Outbox.queue_all`: the setup queue of a task for ``peer``."""
        return self.outbox.queue_all(secure_id, peer)

    def pending_counts(self, secure_id: str) -> dict[str, int]:
        """:meth:`Outbox.pending_counts`: pending event count per device for the task."""
        return self.outbox.pending_counts(secure_id)

    def invitation(self, secure_id: str, peer: str) -> list[dict]:
        """:meth:`Membership.invitation`: the member list a SHARE to ``peer`` carries."""
        return self.members.invitation(secure_id, peer)

    def accept_members(self, peer: str, secure_id: str, records: object) -> bool:
        """Merge the member list of a share this device accepted from ``peer`` (ChangeRefused if bad)."""
        return self.members.receive(peer, Members(secure_id, records), invited=True)  # type: ignore[arg-type]

    def membership_for(self, peer: str) -> list[Members]:
        """:meth:`Membership.for_peer`: the member lists to send ``peer`` at a meeting."""
        return self.members.for_peer(peer)

    def owes_back(self, peer: str) -> bool:
        """True (once) when applying ``peer``'s changes queued something for ``peer`` itself: a merged
        version or a conflict copy, to be sent in the same meeting. Takes no lock (the event loop asks):
        a set's membership and removal are atomic, and a race costs one extra look at the outbox."""
        if peer in self._owed_back:
            self._owed_back.discard(peer)
            return True
        return False

    def prebuild(self, peer: str, m: Modification) -> ReadyKey | None:
        """:meth:`Staging.prebuild`: write a streaming delta's content ahead, without the engine lock."""
        return self.staging.prebuild(peer, m)

    def resumed(self) -> list[tuple[str, set[str]]]:
        """The tasks that waited (their app ran, their patterns were broken) and go on now, each with the
        peers whose changes it refused meanwhile: scan them, and ask those peers to send again."""
        with self._lock:
            return self.contexts.resumed()

    def discard_prebuilt(self, key: ReadyKey) -> None:
        """Remove what :meth:`prebuild` wrote for ``key`` if the apply did not use it."""
        self._ready.discard(key)

    # -- receiving ------------------------------------------------------------------------------
    def receive(self, peer: str, message: Message) -> list[Message]:
        """Act on ``message`` from device ``peer``; return the answers to send back.

        Raises ChangeRefused for a task this device does not share with ``peer`` or an unsafe path;
        nothing is written then.
        """
        with self._lock:
            try:
                if isinstance(message, ModificationDone):
                    return self._on_done(peer, message)
                if isinstance(message, NeedState):
                    return self._on_need_state(peer, message)
                if isinstance(message, Modification):
                    return self._on_modification(peer, message)
                if isinstance(message, Members):
                    self.members.receive(peer, message)
                    return []
            except ChangeRefused:
                if not isinstance(message, Members) and self.members.remind_departure(message.secure_id, peer):
                    self._owed_back.add(peer)  # our departure goes to it in this meeting
                raise
        raise ChangeRefused(f"unknown message {type(message).__name__}")

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
                    if _alone(run[0]):
                        self._receive_each(peer, run, results)
                        continue
                    with self.store.batch(), deferred_dir_syncs(), self.staging.batch(peer, run, self._paths):
                        self._receive_each(peer, run, results)
            finally:
                self._paths = None
        # what a batch, or the streamed content before it, freed lies between objects that stay
        give_back_free_memory()
        return results

    def _receive_each(self, peer: str, messages: Sequence[Message], results: list[list[Message] | Exception]) -> None:
        for message in messages:
            try:
                results.append(self.receive(peer, message))
            except Exception as exc:  # reported per message by the caller, like receive's own errors
                results.append(exc)

    def _checked(self, peer: str, secure_id: str, path: str) -> tuple[TaskContext, Path]:
        return self.contexts.checked(peer, secure_id, path, self._paths)

    def _on_done(self, peer: str, message: ModificationDone) -> list[Message]:
        ctx, _ = self._checked(peer, message.secure_id, message.path)
        with self.store.session() as session:
            acknowledge(session, ctx.id, message.path, peer, message.version)
        return []

    def _on_need_state(self, peer: str, message: NeedState) -> list[Message]:
        ctx, _ = self._checked(peer, message.secure_id, message.path)
        self.contexts.check_going(ctx, peer)  # a running app's file may be half-written
        signature = None
        if message.signature:
            try:
                signature = Signature.from_bytes(message.signature)
            except ValueError as exc:
                raise ChangeRefused(f"bad signature from {short_id_text(peer)}: {exc}") from None
        answer = self.outbox.modification(message.secure_id, message.path, message.have_hash if signature else "",
                                          signature=signature, reply=True)
        return [answer] if answer is not None else []

    def _on_modification(self, peer: str, m: Modification) -> list[Message]:
        ctx, target = self._checked(peer, m.secure_id, m.path)
        self.contexts.check_going(ctx, peer)  # the app runs, or its patterns are broken: later
        if self.contexts.ignored(ctx, m.path):  # neither written nor deleted here; the sender may stop owing it
            return [ModificationDone(m.secure_id, m.path, dict(m.version))]
        local = self.local.fresh_entry(ctx, m.path)  # a local edit not yet indexed is a version too
        remote = Entry(m.path, dict(m.version), m.hash, m.size, 0, m.modified_ns, m.modified_by, m.deleted)
        present = True
        if ctx.info.backup_mode and local is not None and not local.deleted:
            present = target.exists()
        decision = decide(local, remote, backup_mode=ctx.info.backup_mode, present=present)
        if decision.action is Action.UP_TO_DATE:
            return [ModificationDone(m.secure_id, m.path, decision.version)]
        if decision.action is Action.TAKE_REMOTE:
            return self._take_remote(peer, ctx.info, target, decision, remote, m)
        if decision.action is Action.KEEP_LOCAL:
            assert decision.local is not None
            self._commit_entry(ctx.info, decision.local, decision.local.but(version=decision.version), peer, True)
            return [ModificationDone(m.secure_id, m.path, decision.version)]
        return self._keep_both(peer, ctx.info, target, decision, remote, m)

    def _take_remote(self, peer: str, info: TaskInfo, target: Path, decision: Decision, remote: Entry,
                     m: Modification) -> list[Message]:
        """Make the remote version this device's version of the path (content, tombstone or just version)."""
        local, merged, relay = decision.local, decision.version, decision.relay_to_peer
        done = [ModificationDone(m.secure_id, m.path, merged)]
        if same_content(local, remote):
            new = (local or remote).but(version=merged, modified_ns=remote.modified_ns, modified_by=remote.modified_by)
            if local is None:
                new = new.but(mtime_ns=0)
            self._commit_entry(info, local, new, peer, relay)
            return done
        if remote.deleted:
            try:
                target.unlink()
            except FileNotFoundError:
                pass
            ctx = self.contexts.get(info.secure_id)
            remove_empty_parents(target, ctx.places.place_of(m.path), self.contexts.ignores(info).deletable)
            self._commit_entry(info, local, remote.but(version=merged, mtime_ns=0), peer, relay)
            if self.hook is not None:
                notify.notify_applied(self.hook, info, m.path, True)
            return done
        signature = new_signature(self.objects, m)
        temp = self._materialize(target, local, m, signature)
        if not isinstance(temp, Path):
            return [temp] if temp is not None else []
        # The new content's signature is read through a descriptor opened before the rename (what was
        # written, whatever replaces the path since), once the change is visible: it only serves later
        # deltas, and took 60-80 ms at 128 MiB before the rename. Where an open file cannot be renamed
        # (Windows), it is read before. A content without a signature (small) has nothing to hold open.
        with held_open(temp) if signature is not None else nullcontext(None) as written:
            kept = signature.result(temp) if signature is not None and written is None else None
            renamed_ns = time.time_ns()
            st = commit_temp(temp, target, remote.modified_ns)
            self.local.note_written(info.secure_id, m.path, st, remote.modified_ns, renamed_ns)
            self._commit_entry(info, local, remote.but(version=merged, mtime_ns=st.st_mtime_ns), peer, relay)
            if signature is not None and written is not None:
                kept = signature.result(written)
        self.local.remember_content(target, remote, kept)
        if self.hook is not None:
            notify.notify_applied(self.hook, info, m.path, False)
        return done

    def _keep_both(self, peer: str, info: TaskInfo, target: Path, decision: Decision, remote: Entry,
                   m: Modification) -> list[Message]:
        """A conflict: the winner stays at the path, the loser is kept as a conflict copy beside it."""
        local, merged, loser = decision.local, decision.version, decision.loser
        assert local is not None and loser is not None
        copy_rel, copy_path, kept = self._conflict_copy(info.secure_id, decision)
        if decision.action is Action.CONFLICT_REMOTE_WINS:
            temp = self._materialize(target, local, m)
            if not isinstance(temp, Path):
                return [temp] if temp is not None else []
            if not kept:
                os.replace(target, copy_path)  # the local loser keeps its bytes under the conflict name
            self.local.scan(m.secure_id, [copy_rel])
            st = commit_temp(temp, target, remote.modified_ns)
            self._commit_entry(info, local, remote.but(version=merged, mtime_ns=st.st_mtime_ns), peer, True)
            self.local.remember_content(target, remote, None)
        else:
            temp = self._materialize(copy_path, None, m)
            if not isinstance(temp, Path):
                return [temp] if temp is not None else []
            if kept:
                temp.unlink()
            else:
                commit_temp(temp, copy_path, remote.modified_ns)
            self.local.scan(m.secure_id, [copy_rel])
            self._commit_entry(info, local, local.but(version=merged), peer, relay_to_peer=True)
        log.info("conflict in task %s: %s was changed on two devices; the other version is kept as %s",
                 info.name, m.path, copy_rel)
        if self.hook is not None:
            notify.notify_conflict(self.hook, info, m.path, copy_rel)
        return [ModificationDone(m.secure_id, m.path, merged)]

    def _conflict_copy(self, secure_id: str, decision: Decision) -> tuple[str, Path, bool]:
        """Where the losing version is kept: (relative path, path, True when that file holds the loser's
        content already, as when another device's copy of this conflict arrived first).

        A device can lose twice within one second, and its second copy must not be taken for the first
        (that dropped the second edit): a name held by other content is skipped for the next of the
        decision's names, so devices resolving the same conflict still agree on it. Raises ChangeRefused
        (nothing written; the event stays pending) if every name is taken."""
        ctx = self.contexts.get(secure_id)
        loser = decision.loser
        assert loser is not None
        for rel in decision.conflict_names:
            try:
                copy = ctx.places.locate(rel)
            except UnsafePath as exc:
                raise ChangeRefused(f"cannot keep the conflicting version of {loser.path}: {exc}") from None
            if not os.path.lexists(copy):
                return rel, copy, False
            held = self.local.fresh_entry(ctx, rel)
            if held is not None and not held.deleted and held.hash == loser.hash:
                return rel, copy, True
        raise ChangeRefused(f"no free name to keep the conflicting version of {loser.path}")

    def _materialize(self, target: Path, local: Entry | None, m: Modification,
                     signature: NewSignature | None = None) -> Path | NeedState | None:
        """``m``'s content in a verified temp file ready to move onto ``target`` (staged ahead, or rebuilt
        now beside it); NEED_STATE when our content is not the delta's base (or the delta fails), None
        when even a requested answer failed."""
        ready = self._ready.take((m.secure_id, m.path, m.hash))
        if ready is not None:
            temp, made = ready
            if temp.parent in (target.parent, self.staging.folder):  # a rename away, on the same device
                if made is not None and signature is not None:
                    signature.adopt(made)
                elif made is not None and (kept := made.result(temp)) is not None:  # nobody takes it later
                    try:
                        self.objects.put_signature(m.hash, kept)
                    except OSError:  # a cache: later deltas are only larger without it
                        pass
                return temp
            temp.unlink(missing_ok=True)
        base: Path | None = None
        if m.base_hash:
            base = base_of(self.objects, target, local, m)
            if base is None:
                return None if m.reply else self._need_state(target, local, m)
        if m.delta is None:
            return None if m.reply else self._need_state(target, local, m)
        try:
            return rebuild(target, m, base, signature=signature)
        except (IntegrityError, DeltaError, OSError) as exc:
            log.warning("discarded change of %s from %s: %s", m.path, m.modified_by, exc)
            return None if m.reply else self._need_state(target, local, m, whole=True)

    def _need_state(self, target: Path, local: Entry | None, m: Modification, *, whole: bool = False) -> NeedState:
        """Ask the sender for ``m``'s path against what this device has (its signature for a large file)."""
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
        ctx = self.contexts.get(info.secure_id)
        with self.store.session() as session:
            put_entry(session, ctx.id, new)
            targets = [d for d in ctx.linked if relay_to_peer or d != peer]
            queue_pending(session, ctx.id, new.path, old, new.version, targets)
            if not relay_to_peer:
                acknowledge(session, ctx.id, new.path, peer, new.version)
            else:
                self._owed_back.add(peer)
