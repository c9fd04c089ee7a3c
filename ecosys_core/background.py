"""Tasks that run in the background of the event loop, and never fail unseen: each is kept referenced
until it ends (the loop holds only weak references), and an exception it ends with is logged with its
traceback instead of surfacing later as "Task exception was never retrieved"."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Coroutine

log = logging.getLogger("ecosys.background")
_RUNNING: set[asyncio.Task] = set()


def spawn(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task:
    """Run ``coro`` as a task of its own; ``what`` names it in the log if it fails."""
    task = asyncio.ensure_future(coro)
    _RUNNING.add(task)
    task.add_done_callback(lambda done: _ended(done, what))
    return task


def _ended(task: asyncio.Task, what: str) -> None:
    _RUNNING.discard(task)
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None:
        log.error("%s failed: %s", what, exc, exc_info=exc)
