"""How the engine consults and informs plugins about sync events (one place, so call sites stay short)."""

from __future__ import annotations

from pluggy import HookRelay

from ..types import TaskInfo


def change_may_be_sent(hook: HookRelay, task: TaskInfo, path: str, deleted: bool) -> bool:
    """Ask ``change_about_to_send``; False when any plugin vetoed the change."""
    return all(result is not False for result in hook.change_about_to_send(task=task, path=path, deleted=deleted))


def notify_applied(hook: HookRelay, task: TaskInfo, path: str, deleted: bool) -> None:
    """Tell plugins a remote change of ``path`` was applied (``change_applied``)."""
    hook.change_applied(task=task, path=path, deleted=deleted)


def notify_conflict(hook: HookRelay, task: TaskInfo, path: str, conflict_path: str) -> None:
    """Tell plugins ``path`` ended in a conflict whose losing copy is ``conflict_path``."""
    hook.change_conflicted(task=task, path=path, conflict_path=conflict_path)
