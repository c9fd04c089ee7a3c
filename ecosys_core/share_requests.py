"""A task shared by a linked device (SHARE), on the receiving side: where it goes, and whether the
person agrees. Nothing here holds a worker thread while a person thinks.

- a task this device already has under the same secure_id is linked at once;
- an app or grapin task asks the person first (SHARE, naming the folder it will write), unless they said
  the sharing device may (``ecosys link DEVICE --trust-apps``): app data can be a shell's start-up file;
- an app or grapin present here too follows the seed's timestamp rule (the older task is the reference);
- anything else goes where a ``choose_link_path`` plugin says, else where the person answers
  (CHOOSELINKPATH).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from pluggy import HookRelay

from .errors import EcosysError
from .linking import (
    AppLinkDecision,
    accept_task_offer,
    adopt_secure_id,
    app_share_question,
    decide_app_link,
    link_path_question,
    root_from_answer,
    trusts_app_shares,
)
from .net.session import PeerSession
from .prompts import Prompts, is_yes
from .questions import PendingQuestions
from .store import Store
from .store.devices import link_task_device
from .store.tasks import list_tasks
from .types import TaskInfo, TaskKind, TaskLayout, TaskOffer

log = logging.getLogger("ecosys.daemon")
PROMPT_TIMEOUT = 120.0
APP_KINDS = (TaskKind.APP, TaskKind.GRAPIN)


class TaskSync(Protocol):
    """What linking needs of the sync engine."""

    members: Any  # ``sync.membership.Membership``

    def invitation(self, secure_id: str, peer: str) -> list[dict[str, Any]]:
        """The task's member list with ``peer`` in it, as a SHARE carries it."""

    def accept_members(self, peer: str, secure_id: str, records: Any) -> bool:
        """Merge the member list of a share accepted from ``peer``."""

    def queue_all(self, secure_id: str, peer: str) -> int:
        """Make every path of the task pending for ``peer`` (the setup queue)."""

    def scan(self, secure_id: str) -> Any:
        """Index the task's folder."""


class ShareRequests:
    """SHARE requests from linked devices. ``task_added`` is told of every task created or linked."""

    def __init__(self, me: str, store: Store, hook: HookRelay, prompts: Prompts, sync: TaskSync,
                 run_blocking: Callable[..., Awaitable[Any]], task_added: Callable[[TaskInfo], None],
                 questions: PendingQuestions, changed: Callable[[], None]) -> None:
        self.me = me
        self.changed = changed
        self.store, self.hook, self.prompts, self.sync = store, hook, prompts, sync
        self.run_blocking = run_blocking
        self.task_added = task_added
        self.questions = questions

    async def on_share(self, session: PeerSession, h: dict[str, Any]) -> None:
        """Answer SHARE with SHARE_ACCEPTED, SHARE_REVERSE (ours is older) or SHARE_REFUSED (with why)."""
        def reply(flag: str, **extra: Any) -> None:
            session.answer((flag, {"flag": flag, "device_id": self.me, **extra}, b""))

        try:
            offer = TaskOffer(h["name"], h["secure_id"], TaskKind(h["kind"]), h.get("source") or None,
                              datetime.fromisoformat(h["created_at"]), session.peer)
        except (KeyError, ValueError, TypeError) as exc:
            reply("SHARE_REFUSED", error=f"bad share request: {exc}")
            return
        if not self.questions.begin(session.peer, linked=True):
            reply("SHARE_REFUSED", secure_id=offer.secure_id,
                  error="busy: earlier requests from your device are still waiting for an answer")
            return
        try:
            task = await self._accept(offer)
        except EcosysError as exc:
            reply("SHARE_REFUSED", secure_id=offer.secure_id, error=str(exc))
            log.info("refused the task %r from %s: %s", offer.name, session.label, exc)
            return
        finally:
            self.questions.end(session.peer)
        if isinstance(h.get("members"), list):
            try:
                await self.run_blocking(self.sync.accept_members, session.peer, task.secure_id, h["members"])
            except EcosysError as exc:  # the share stands; the list comes again at the next meeting
                log.warning("the member list shared by %s was refused: %s", session.label, exc)
        if task.secure_id != offer.secure_id:  # ours is older: the other side adopts it
            reply("SHARE_REVERSE", secure_id=task.secure_id, created_at=task.created_at.isoformat())
        else:  # with our list, which may already know more about this device than the sharer did
            listed = await self.run_blocking(self.sync.members.message, task.secure_id)
            reply("SHARE_ACCEPTED", secure_id=task.secure_id, **({"members": listed.members} if listed else {}))
        self.task_added(task)
        await self.run_blocking(self.sync.queue_all, task.secure_id, session.peer)
        self.changed()  # the other members learn of this device

    async def _accept(self, offer: TaskOffer) -> TaskInfo:
        """The task ``offer`` becomes here; EcosysError when refused (by the person or the checks)."""
        existing, where, layout = await self.run_blocking(self._existing_or_place, offer)
        if existing is not None and existing.secure_id == offer.secure_id:
            if await self.run_blocking(self.sync.members.was_removed, offer.secure_id, offer.device_id):
                raise EcosysError(f"your device was removed from the task {existing.name!r} here; only a share "
                                  "made from this device brings it back")
            return await self.run_blocking(self._link, existing, offer)
        if offer.kind in APP_KINDS and not trusts_app_shares(self.store, offer.device_id):
            folder = existing.root if existing is not None else where
            answer = await self.prompts.ask_async("SHARE", app_share_question(offer, folder), timeout=PROMPT_TIMEOUT)
            if not is_yes(answer):
                raise EcosysError(f"the {offer.kind.value} task {offer.name!r} was declined")
        if existing is not None:
            return await self.run_blocking(self._adopt_or_keep, existing, offer)
        if where is None:
            answer = await self.prompts.ask_async("CHOOSELINKPATH", link_path_question(offer), timeout=PROMPT_TIMEOUT)
            where = root_from_answer(offer, answer)
        return await self.run_blocking(self._create, offer, where, layout)

    def _existing_or_place(self, offer: TaskOffer) -> tuple[TaskInfo | None, Path | None, TaskLayout | None]:
        """(Blocking.) The task here that ``offer`` is (same secure_id, or the same app), or else where a
        ``task_layout`` or ``choose_link_path`` plugin puts it (None: the person is asked)."""
        tasks = list_tasks(self.store)
        for task in tasks:
            if task.secure_id == offer.secure_id:
                return task, None, None
        if offer.kind in APP_KINDS:
            for task in tasks:
                if task.kind is offer.kind and task.source == offer.source:
                    return task, None, None
            layout = self.hook.task_layout(offer=offer)
            if layout is not None:
                return None, layout.root or layout.parts[0].path, layout
        chosen = self.hook.choose_link_path(offer=offer)
        return None, Path(chosen) if chosen is not None else None, None

    def _link(self, task: TaskInfo, offer: TaskOffer) -> TaskInfo:
        link_task_device(self.store, task.secure_id, offer.device_id)
        self.hook.task_linked(task=task, device_id=offer.device_id)
        return task

    def _adopt_or_keep(self, task: TaskInfo, offer: TaskOffer) -> TaskInfo:
        """The seed's rule for an app present on both sides: the older task is the reference."""
        decision = decide_app_link(task.created_at, task.secure_id, offer.created_at, offer.secure_id)
        if decision is AppLinkDecision.ADOPT_REMOTE:
            task = adopt_secure_id(self.store, task.name, offer.secure_id)
        return self._link(task, offer)

    def _create(self, offer: TaskOffer, root: Path, layout: TaskLayout | None = None) -> TaskInfo:
        task = accept_task_offer(self.store, self.hook, offer, root, layout=layout)
        self.sync.scan(task.secure_id)
        return task
