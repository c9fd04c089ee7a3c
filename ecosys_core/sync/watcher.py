"""Turn filesystem events (watchdog) into index updates, coalescing bursts.

Events only say *where* to look: the engine's scan compares the disk with the index, so the engine's
own writes (already indexed when their rename lands) are never taken for local edits, while a user's
edit is. A path is scanned once no event touched its task for ``settle`` seconds, or at the latest
``max_delay`` seconds after its first event. A folder made, moved or removed rescans that folder's
subtree; an event on the root itself, or a periodic timer, rescans the task.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

from ..errors import EcosysError
from ..types import TaskInfo
from .engine import ScanReport, SyncEngine
from .fsio import is_temp_name
from .local import home_inside
from .places import CONFLICT_MARK

log = logging.getLogger(__name__)
_FULL = None  # marker: rescan the whole task
RESUME_CHECK = 1.0  # seconds between looks at the tasks waiting for their app to stop
# What can change a file's content or existence, and a file closed after writing (inotify's
# IN_CLOSE_WRITE): its writer is usually done, so the scan need not wait the whole settle time. Opens,
# reads and closes without writing are not asked of the kernel: every file the sender reads would
# cost two events, each handled in Python.
_EVENTS = [FileCreatedEvent, FileModifiedEvent, FileClosedEvent, FileDeletedEvent, FileMovedEvent,
           DirCreatedEvent, DirDeletedEvent, DirMovedEvent]
CLOSED_SETTLE = 0.06  # seconds without events before a scan when the last event closed a written file: past
# the finest timestamp step (scanner._FINE_STEP_NS), so what the scan reads counts as settled and is not read again to send it


class _Handler(FileSystemEventHandler):
    """Events under ``folder``, which holds the task's files below ``prefix`` (a plain task: its root and
    ""; a folder part: its folder and "NAME/"). ``whole``: any event there rescans the whole task (the
    folder holding a file part, or the own root of a task of several places, with its .ecosysignore);
    ``names`` then keeps only the events of those file names (and their conflict copies)."""

    def __init__(self, watcher: "TaskWatcher", task: TaskInfo, folder: Path, prefix: str = "",
                 whole: bool = False, names: tuple[str, ...] = ()) -> None:
        self.watcher = watcher
        self.task = task
        self.root = str(folder)
        self.prefix = prefix
        self.whole = whole
        self.names = names
        self.excluded = home_inside(folder, watcher.engine.store.home)  # the database's own writes

    def _rel(self, path: str | bytes) -> str | None:
        """``path`` relative to the root, '/'-separated ("" for the root itself); None when it is outside
        the root or one of our temporary files."""
        rel = os.path.relpath(os.fsdecode(path), self.root)
        if rel == os.curdir:
            return ""
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return None
        rel = rel.replace(os.sep, "/")
        if any(is_temp_name(part) for part in rel.split("/")) or (rel + "/").startswith(self.excluded):
            return None
        return rel

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        if event.is_directory and event.event_type not in ("moved", "deleted", "created"):
            return
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            rel = self._rel(raw) if raw else None
            if rel is None:
                continue
            if self.whole:
                if not self.names or rel.startswith(self.names):
                    self.watcher.touch(self.task.secure_id, _FULL)
            elif not event.is_directory:
                self.watcher.touch(self.task.secure_id, self.prefix + rel, closed=event.event_type == "closed")
            else:
                # A folder made, moved or removed: its subtree is compared, not the whole task (an initial
                # sync makes folders all along; each used to cost a walk of the task under the engine lock).
                self.watcher.touch(self.task.secure_id, (self.prefix + rel + "/") if rel else (self.prefix or _FULL))


class TaskWatcher:
    """Watches task roots and feeds changed paths to ``engine.scan``."""

    def __init__(self, engine: SyncEngine, tasks: list[TaskInfo], *, settle: float = 0.15, max_delay: float = 1.0,
                 rescan_interval: float = 300.0, on_scan: Callable[[str, ScanReport], None] | None = None,
                 on_resumed: Callable[[str, set[str]], None] | None = None) -> None:
        self.engine = engine
        self.on_resumed = on_resumed  # (task, peers refused while it waited): ask them to send again
        self.tasks = {t.secure_id: t for t in tasks}
        self.settle, self.max_delay, self.rescan_interval = settle, max_delay, rescan_interval
        self.on_scan = on_scan
        self._pending: dict[str, set[str] | None] = {}
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self._closed_last: dict[str, bool] = {}  # per task: its last event closed a written file
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._observer = Observer()
        self._watches: dict[str, list[tuple[Any, _Handler]]] = {}  # per task: its watches and handlers
        self._users: dict[Any, int] = {}  # per watch: how many handlers (tasks) use it
        self._thread = threading.Thread(target=self._run, name="ecosys-watcher", daemon=True)

    def start(self) -> None:
        """Start watching every task's places (folders recursively) and the scanning thread."""
        for task in self.tasks.values():
            self._schedule(task)
        self._observer.start()
        self._thread.start()

    def _schedule(self, task: TaskInfo) -> None:
        handlers: list[tuple[Path, _Handler, bool]] = []
        if not task.parts:
            handlers.append((task.root, _Handler(self, task, task.root), True))
        else:
            handlers.append((task.root, _Handler(self, task, task.root, whole=True), False))
            for part in task.parts:
                if part.file:
                    stem = part.path.name.rpartition(".")[0] or part.path.name
                    handlers.append((part.path.parent, _Handler(self, task, part.path.parent, whole=True,
                                                                names=(part.path.name, stem + CONFLICT_MARK)), False))
                else:
                    handlers.append((part.path, _Handler(self, task, part.path, part.name + "/"), True))
        watches = self._watches.setdefault(task.secure_id, [])
        for folder, handler, recursive in handlers:
            if not folder.is_dir():
                log.warning("not watching %s: %s does not exist", task.name, folder)
                continue
            watch = self._observer.schedule(handler, str(folder), recursive=recursive, event_filter=_EVENTS)
            watches.append((watch, handler))
            self._users[watch] = self._users.get(watch, 0) + 1

    def add(self, task: TaskInfo) -> None:
        """Start watching one more task (a task linked while running)."""
        if task.secure_id in self.tasks:
            return
        self.tasks[task.secure_id] = task
        if self._observer.is_alive():
            self._schedule(task)

    def remove(self, secure_id: str) -> None:
        """Stop watching a task that was removed."""
        task = self.tasks.pop(secure_id, None)
        if task is None:
            return
        with self._cond:
            self._pending.pop(secure_id, None)
            self._first.pop(secure_id, None)
            self._last.pop(secure_id, None)
            self._closed_last.pop(secure_id, None)
        for watch, handler in self._watches.pop(secure_id, []):
            try:
                self._observer.remove_handler_for_watch(handler, watch)
                self._users[watch] -= 1
                if not self._users[watch]:  # no other task watches that folder
                    del self._users[watch]
                    self._observer.unschedule(watch)
            except (KeyError, OSError):
                pass

    def follow(self, tasks: list[TaskInfo]) -> list[str]:
        """Watch exactly ``tasks`` from now on: stop watching the tasks not among them (removed, or
        replaced under another secure_id), start watching the new ones; return the new ones' secure_ids."""
        wanted = {t.secure_id: t for t in tasks}
        for secure_id in set(self.tasks) - set(wanted):
            self.remove(secure_id)
        new = [secure_id for secure_id in wanted if secure_id not in self.tasks]
        for secure_id in new:
            self.add(wanted[secure_id])
        return new

    def stop(self) -> None:
        """Stop watching; pending paths are scanned first."""
        self._observer.stop()
        self._observer.join(5)
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(10)

    def touch(self, secure_id: str, rel: str | None, closed: bool = False) -> None:
        """Note that ``rel`` (a file, or a folder's subtree when it ends with "/"; None: the whole task)
        may have changed; ``closed``: a file closed after writing, which shortens the wait while no other
        event follows (CLOSED_SETTLE; a scan that finds it still written leaves it to its next event)."""
        now = time.monotonic()
        with self._cond:
            # With something pending the scanning thread looks every 50 ms anyway; waking it at every event
            # of a burst (a received file is one) only made it fight the GIL for nothing.
            asleep = not self._pending
            current = self._pending.get(secure_id, set())
            if rel is _FULL or current is _FULL:
                self._pending[secure_id] = _FULL
            else:
                current.add(rel)
                self._pending[secure_id] = current
            self._first.setdefault(secure_id, now)
            self._last[secure_id] = now
            self._closed_last[secure_id] = closed
            if asleep or closed:
                self._cond.notify_all()

    def _due(self, now: float) -> list[tuple[str, set[str] | None]]:
        due = []
        for secure_id in list(self._pending):
            settle = min(self.settle, CLOSED_SETTLE) if self._closed_last.get(secure_id) else self.settle
            if now - self._last[secure_id] >= settle or now - self._first[secure_id] >= self.max_delay:
                due.append((secure_id, self._pending.pop(secure_id)))
                del self._first[secure_id], self._last[secure_id], self._closed_last[secure_id]
        return due

    def _run(self) -> None:
        next_rescan = time.monotonic() + self.rescan_interval
        next_resume = time.monotonic() + RESUME_CHECK
        while True:
            if time.monotonic() >= next_resume:  # a task whose app ran: scanned as a whole once it stopped
                next_resume = time.monotonic() + RESUME_CHECK
                for secure_id, peers in self.engine.resumed():
                    self.touch(secure_id, _FULL)
                    if self.on_resumed:
                        self.on_resumed(secure_id, peers)
            with self._cond:
                if self._stop.is_set() and not self._pending:
                    return
                now = time.monotonic()
                due = self._due(now) if not self._stop.is_set() else list(self._pending.items())
                if self._stop.is_set():
                    self._pending.clear()
                if not due:
                    soon = 0.01 if any(self._closed_last.get(sid) for sid in self._pending) else 0.05
                    self._cond.wait(timeout=soon if self._pending else min(RESUME_CHECK, max(0.0, next_rescan - now)))
                    if time.monotonic() >= next_rescan:
                        due = [(sid, _FULL) for sid in self.tasks]
                        next_rescan = time.monotonic() + self.rescan_interval
                    else:
                        continue
            for secure_id, paths in due:
                try:
                    # Impatient: a file still being written is left to the event its write ends with
                    if paths is _FULL:
                        report = self.engine.scan(secure_id, patient=False)
                    else:  # a folder is noted with a trailing slash: no file path ends with one
                        report = self.engine.scan(secure_id, sorted(p for p in paths if not p.endswith("/")),
                                                  folders=[p[:-1] for p in paths if p.endswith("/")], patient=False)
                except EcosysError as exc:  # said in a line: a root gone, broken ignore patterns
                    log.warning("task %s not scanned: %s", secure_id[:12], exc)
                    continue
                except Exception:  # the watcher must survive a bad moment (disk gone, db busy)
                    log.exception("scan of task %s failed", secure_id)
                    continue
                if self.on_scan:
                    self.on_scan(secure_id, report)

    def __enter__(self) -> "TaskWatcher":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


