"""What the engine's parts need of a task on every message, cached: its index key, snapshot and the
devices it is shared with, and the check that a peer may touch a path of it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..device_ids import short_id_text
from ..errors import ChangeRefused, NotFound, UnsafePath
from ..safe_paths import InsideChecker
from ..store import Store
from ..store.index import find_task, linked_devices
from ..types import TaskInfo
from .ignores import IgnoreFileError, IgnoresByRoot, TaskIgnores, ignore_defaults
from .places import Places
from .running import RunningApps


def short_id(device_id: str) -> str:
    """The key of ``device_id`` in version vectors (its first 48 bits, hex)."""
    return device_id[:12]


@dataclass(frozen=True)
class TaskContext:
    """What the hot paths need of a task, cached until the store says tasks or links changed."""

    id: int
    info: TaskInfo
    linked: frozenset[str]
    places: Places

    @property
    def root(self) -> Path:
        return self.info.root


class TaskContexts:
    """The :class:`TaskContext` of each task, read from the store once per store generation."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._contexts: dict[str, TaskContext] = {}
        self._generation = -1
        self._ignores = IgnoresByRoot()
        self.running = RunningApps()
        self._held: dict[str, tuple[TaskInfo, set[str]]] = {}  # tasks waiting, and the peers refused meanwhile

    def get(self, secure_id: str) -> TaskContext:
        """The task's context; NotFound if this device has no task ``secure_id``."""
        if self._generation != self.store.generation:
            self._contexts.clear()
            self._generation = self.store.generation
        ctx = self._contexts.get(secure_id)
        if ctx is None:
            with self.store.session(own=True) as session:  # cached beyond any batch: committed state only
                ref = find_task(session, secure_id)
                if ref is None:
                    raise NotFound(f"no sync task with secure_id {secure_id}")
                ctx = TaskContext(ref.id, ref.info, frozenset(linked_devices(session, ref.id)), Places.of(ref.info))
            self._contexts[secure_id] = ctx
        return ctx

    def ignores(self, info: TaskInfo) -> TaskIgnores:
        """The task's ignore patterns, read again if their files changed (app data starts with
        :data:`APP_DEFAULTS`); IgnoreFileError while its ``.ecosysignore`` is broken."""
        return self._ignores.get(info.root, ignore_defaults(info))

    def hold(self, info: TaskInfo) -> str | None:
        """Why the task's changes wait here now (its ignore patterns are broken, or its app runs), or
        None. A task found waiting is remembered until :meth:`resumed` sees it go again."""
        try:
            self.ignores(info)
            reason = self.running.reason(info)
        except IgnoreFileError as exc:
            reason = f"its ignore patterns must be mended: {exc}"
        if reason is not None:
            self._held.setdefault(info.secure_id, (info, set()))
        return reason

    def check_going(self, ctx: TaskContext, peer: str) -> None:
        """ChangeRefused (the change stays pending with ``peer``, asked again when the task goes on)
        while the task waits."""
        reason = self.hold(ctx.info)
        if reason is not None:
            self._held[ctx.info.secure_id][1].add(peer)
            raise ChangeRefused(f"task {ctx.info.name} is waiting: {reason}")

    def resumed(self) -> list[tuple[str, set[str]]]:
        """The tasks that waited and go on now, with the peers whose changes were refused meanwhile."""
        out = []
        for secure_id, (info, peers) in list(self._held.items()):
            self.running.forget()
            try:
                self.ignores(info)
                going = self.running.reason(info) is None
            except IgnoreFileError:
                going = False
            if going:
                del self._held[secure_id]
                out.append((secure_id, peers))
        return out

    def checked(self, peer: str, secure_id: str, path: str, paths: InsideChecker | None = None
                ) -> tuple[TaskContext, Path]:
        """The task and the file ``path`` of it that ``peer`` asks about; ChangeRefused when the task is
        not shared with ``peer`` or the path is unsafe. ``paths`` remembers folders already checked."""
        try:
            ctx = self.get(secure_id)
        except NotFound:
            ctx = None
        if ctx is None or peer not in ctx.linked:
            raise ChangeRefused(f"task {secure_id[:12]}… is not shared with device {short_id_text(peer)}")
        try:
            target = ctx.places.locate(path, paths)
        except UnsafePath as exc:
            raise ChangeRefused(f"unsafe path from {short_id_text(peer)}: {exc}") from None
        return ctx, target

    def ignored(self, ctx: TaskContext, path: str) -> bool:
        """True when ``path`` of the task is ignored here; ChangeRefused while the patterns are broken
        (the change stays pending with its sender until they are mended)."""
        try:
            return self.ignores(ctx.info).ignored(path)
        except IgnoreFileError as exc:
            raise ChangeRefused(f"task {ctx.info.name} waits for its ignore patterns to be mended: {exc}") from None
