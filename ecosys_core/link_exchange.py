"""The linking exchanges with a peer, both sides: LINK / UNLINK, SHARE (a task) and SETUP_QUEUE, each
a request answered by a frame. The rules they follow (who adopts whose secure_id, where a task goes)
are in :mod:`linking`; this module carries them over sessions and asks the person when needed.

A request waiting for its answer is a future keyed by (kind, peer): that is its whole state, so there
is no state machine to keep here; a late or unexpected answer finds no future and is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Awaitable, Callable, Protocol

from pluggy import HookRelay

from .background import spawn
from .device_ids import printable, readable_id
from .errors import EcosysError, NotFound
from .introductions import Introductions, set_introducer, set_introduces_to
from .linking import adopt_secure_id, link_device, set_trust_app_shares, unlink_device
from .net.protocol import Frame
from .net.session import PeerSession
from .prompts import Prompts, is_yes
from .questions import PendingQuestions
from .share_requests import PROMPT_TIMEOUT, ShareRequests, TaskSync
from .store import Store
from .store.devices import get_device, link_task_device, task_device_ids
from .store.tasks import get_task
from .types import TaskInfo

log = logging.getLogger("ecosys.daemon")
ANSWER_FLAGS = frozenset({"LINK_ACCEPTED", "LINK_REFUSED", "SHARE_ACCEPTED", "SHARE_REFUSED", "SHARE_REVERSE"})
REQUEST_FLAGS = frozenset({"LINK", "UNLINK", "SHARE", "SETUP_QUEUE", "INTRODUCE"})


class LinkPeers(Protocol):
    """What the exchanges need of the daemon's connections (``net.peers.Peers``)."""

    def is_linked(self, device_id: str) -> bool:
        """True when ``device_id`` is linked."""

    def forget(self, device_id: str) -> None:
        """``device_id`` was linked or unlinked."""

    def live(self, device_id: str) -> PeerSession | None:
        """The open session with ``device_id``, if any."""

    async def session_for(self, device_id: str) -> PeerSession:
        """A session with ``device_id``, dialling it if needed."""

    def changed(self, except_peer: str | None = None) -> None:
        """Member lists or pending events changed: let every linked session send what it should."""

    def connected(self) -> list[PeerSession]:
        """Every open session."""


class Answers:
    """Futures waiting for a peer's answer to a request of one kind."""

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, str], asyncio.Future[Frame]] = {}

    async def expect(self, kind: str, peer: str, timeout: float) -> Frame:
        """The answer of ``kind`` from ``peer``; EcosysError when none came within ``timeout`` s."""
        future: asyncio.Future[Frame] = asyncio.get_running_loop().create_future()
        self._waiting[(kind, peer)] = future
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise EcosysError("no answer from the other device in time") from None
        finally:
            self._waiting.pop((kind, peer), None)

    def deliver(self, peer: str, frame: Frame) -> None:
        """Hand an answer frame to whoever waits for it (dropped when nobody does)."""
        kind = "link" if frame.flag.startswith("LINK") else "share"
        future = self._waiting.get((kind, peer))
        if future is not None and not future.done():
            future.set_result(frame)


class LinkExchange:
    """LINK, UNLINK, SHARE and SETUP_QUEUE, asked by this device (:meth:`link`, :meth:`unlink`,
    :meth:`share`) or by a peer (:meth:`on_frame`). ``task_added`` is told of every task created or
    linked here, so the daemon watches its folder."""

    def __init__(self, me: str, name: str, store: Store, hook: HookRelay, prompts: Prompts, peers: LinkPeers,
                 sync: TaskSync, run_blocking: Callable[..., Awaitable[Any]],
                 task_added: Callable[[TaskInfo], None], questions: PendingQuestions) -> None:
        self.me, self.name = me, name
        self.store, self.hook, self.prompts = store, hook, prompts
        self.peers, self.sync = peers, sync
        self.run_blocking = run_blocking
        self.questions = questions
        self.answers = Answers()
        self.introductions = Introductions(me, store, hook, run_blocking, self._link_back)
        self.shares = ShareRequests(me, store, hook, prompts, sync, run_blocking, task_added, questions,
                                    peers.changed)

    # -- asked by this device ------------------------------------------------------------------
    async def link(self, peer: str, timeout: float, trust_apps: bool = False, introducer: bool = False
                   ) -> dict[str, Any]:
        """Ask ``peer`` to link; EcosysError when it refuses or does not answer. ``trust_apps``: the person
        says ``peer`` is theirs, so it may share app and grapin data here without a SHARE question.
        ``introducer``: ``peer`` introduces its own links here, which are then linked without asking."""
        session, answer = await self._ask_link(peer, timeout, introducer)
        if answer.flag != "LINK_ACCEPTED":
            why = f" ({answer.header['error']})" if answer.header.get("error") else ""
            raise EcosysError(f"{session.peer_name or readable_id(peer)} refused the link{why}")
        before = link_device(self.store, self.hook, peer, printable(str(answer.header.get("name", session.peer_name))))
        set_trust_app_shares(self.store, peer, trust_apps)
        if introducer:
            set_introducer(self.store, peer, True)
        self.peers.forget(peer)
        session.request_flush()
        self.links_changed()
        return {"device_id": peer, "name": session.peer_name, "formerly_shared": before}

    async def _ask_link(self, peer: str, timeout: float, introducer: bool = False) -> tuple[PeerSession, Any]:
        """Send ``peer`` a LINK and wait for its answer (LINK_ACCEPTED or LINK_REFUSED); EcosysError when
        it cannot be reached or does not answer in time."""
        session = await self.peers.session_for(peer)
        await session.send({"flag": "LINK", "device_id": self.me, "name": self.name,
                            **({"introducer": True} if introducer else {})})
        return session, await self.answers.expect("link", peer, timeout)

    def links_changed(self) -> None:
        """This device's links changed: the devices it introduces learn them."""
        for session in self.peers.connected():
            spawn(self.introductions.send(session), f"introducing to {session.label}")

    def session_started(self, session: PeerSession) -> None:
        """A session opened: introduce this device's links to it if it asked."""
        if self.peers.is_linked(session.peer):
            spawn(self.introductions.send(session), f"introducing to {session.label}")

    async def _link_back(self, peer: str, introducer: str) -> None:
        self.peers.forget(peer)
        self.links_changed()
        await self.link_introduced(peer, introducer, PROMPT_TIMEOUT + 10)

    async def link_introduced(self, peer: str, introducer: str, timeout: float) -> None:
        """Ask ``peer``, linked here on ``introducer``'s word, to link back; unlink it again if its person
        refuses (when it was introduced there too it answers at once, without a question)."""
        try:
            _, answer = await self._ask_link(peer, timeout)
        except EcosysError as exc:
            log.info("the device %s introduced by %s did not answer yet: %s", readable_id(peer),
                     readable_id(introducer), exc)
            return
        if answer.flag != "LINK_ACCEPTED":
            log.info("the device %s introduced by %s refused the link: unlinked here", readable_id(peer),
                     readable_id(introducer))
            unlink_device(self.store, self.hook, peer)
            self.peers.forget(peer)

    async def unlink(self, peer: str) -> dict[str, Any]:
        """Unlink ``peer`` here and tell it (if connected). It leaves every task's member list, which
        the other members learn at their next meeting (they stop syncing with it, even if still linked)."""
        session = self.peers.live(peer)
        if session is not None:
            await session.send({"flag": "UNLINK", "device_id": self.me})
        unlink_device(self.store, self.hook, peer, leaves_tasks=True)
        self.peers.forget(peer)
        self.peers.changed()
        if session is not None:
            await session.close()
        return {"device_id": peer}

    async def share(self, task_name: str, peer: str, timeout: float) -> dict[str, Any]:
        """Offer task ``task_name`` to linked device ``peer`` and start its setup queue."""
        task = get_task(self.store, task_name)
        if not self.peers.is_linked(peer):
            raise EcosysError("link the device first ('ecosys link DEVICE')")
        session = await self.peers.session_for(peer)
        members = await self.run_blocking(self.sync.invitation, task.secure_id, peer)
        await session.send({"flag": "SHARE", "device_id": self.me, "secure_id": task.secure_id, "name": task.name,
                            "kind": task.kind.value, "source": task.source or "",
                            "created_at": task.created_at.isoformat(), "members": members})
        answer = await self.answers.expect("share", peer, timeout)
        if answer.flag == "SHARE_REFUSED":
            raise EcosysError(f"refused: {answer.header.get('error', 'no reason given')}")
        note = "shared"
        if answer.flag == "SHARE_REVERSE":
            task = adopt_secure_id(self.store, task.name, answer.header["secure_id"])
            note = "the other device's task is older: this one now follows it"
        link_task_device(self.store, task.secure_id, peer)
        if isinstance(answer.header.get("members"), list):
            try:
                await self.run_blocking(self.sync.accept_members, peer, task.secure_id, answer.header["members"])
            except EcosysError as exc:
                log.warning("the member list of %s was refused: %s", session.label, exc)
        self.hook.task_linked(task=task, device_id=peer)
        await self.run_blocking(self.sync.queue_all, task.secure_id, peer)
        if answer.flag == "SHARE_REVERSE":
            await session.send({"flag": "SETUP_QUEUE", "device_id": self.me, "secure_id": task.secure_id})
        self.peers.changed()  # the new member's record goes to the others
        return {"task": task.name, "secure_id": task.secure_id, "note": note}

    async def unshare(self, task_name: str, peer: str) -> dict[str, Any]:
        """Remove ``peer`` from the task's members: nothing more is sent to it or taken from it for this
        task, here or (once they learn it) on any member; its pending events are dropped."""
        task = get_task(self.store, task_name)
        if not await self.run_blocking(self.sync.members.remove, task.secure_id, peer):
            raise EcosysError(f"{readable_id(peer)} is not a member of the task {task.name!r}")
        self.peers.changed()  # the removed device is told too, so it stops sending
        return {"task": task.name, "device_id": peer}

    # -- asked by a peer -----------------------------------------------------------------------
    async def on_frame(self, session: PeerSession, frame: Frame) -> None:
        """A linking frame from ``session``'s device. Answers go to their waiting request at once;
        requests run as tasks of their own, since they may wait for a person."""
        if frame.flag in ANSWER_FLAGS:
            self.answers.deliver(session.peer, frame)
            return
        handler = {"LINK": self._on_link, "UNLINK": self._on_unlink, "SHARE": self.shares.on_share,
                   "SETUP_QUEUE": self._on_setup_queue, "INTRODUCE": self.introductions.on_introduce,
                   }.get(frame.flag)
        if handler is not None:
            spawn(handler(session, frame.header), f"the {frame.flag} request of {session.label}")

    def _accepted(self, session: PeerSession, h: dict[str, Any]) -> None:
        session.answer(("LINK", {"flag": "LINK_ACCEPTED", "device_id": self.me, "name": self.name}, b""))
        if h.get("introducer") is True:  # the peer takes our introductions
            set_introduces_to(self.store, session.peer, True)
            spawn(self.introductions.send(session), f"introducing to {session.label}")

    async def _on_link(self, session: PeerSession, h: dict[str, Any]) -> None:
        if self.peers.is_linked(session.peer):
            self._accepted(session, h)
            return
        question = (f"Device {session.peer_name or '?'} (id {readable_id(session.peer)}, at {session.conn.address}) "
                    "asks to link with this device. Compare the id with what 'ecosys id' shows on it, then "
                    "answer yes or no.")
        if not self.questions.begin(session.peer, linked=False):
            session.answer(("LINK", {"flag": "LINK_REFUSED", "device_id": self.me,
                                     "error": "busy: a question from your device is already waiting"}, b""))
            log.info("refused a LINK from %s: one is already waiting for an answer", session.label)
            return
        introduced = threading.Event()  # an introducer linked the device meanwhile: no need to ask
        watch = asyncio.ensure_future(self._until_linked(session.peer, introduced))
        try:
            answer = await self.prompts.ask_async("LINK", question, timeout=PROMPT_TIMEOUT, cancel=introduced)
        except EcosysError:
            answer = ""
        finally:
            watch.cancel()
            self.questions.end(session.peer)
        self.peers.forget(session.peer)
        if self.peers.is_linked(session.peer):  # introduced meanwhile by an introducer of this device
            self._accepted(session, h)
        elif is_yes(answer):
            before = link_device(self.store, self.hook, session.peer, session.peer_name)
            if before:
                log.info("linked again with %s; tasks shared before the unlink, not shared again: %s",
                         session.label, ", ".join(before))
            self.peers.forget(session.peer)
            self._accepted(session, h)
            self.links_changed()
            log.info("linked with %s", session.label)
        else:
            session.answer(("LINK", {"flag": "LINK_REFUSED", "device_id": self.me}, b""))
            log.info("refused to link with %s", session.label)

    async def _until_linked(self, peer: str, linked: threading.Event) -> None:
        """Set ``linked`` once ``peer`` is linked here (by an introduction), looking every 0.2 s."""
        while True:
            await asyncio.sleep(0.2)
            if await self.run_blocking(lambda: get_device(self.store, peer).linked):
                linked.set()
                return

    async def _on_unlink(self, session: PeerSession, h: dict[str, Any]) -> None:
        try:
            unlink_device(self.store, self.hook, session.peer)
        except NotFound:
            pass
        self.peers.forget(session.peer)
        log.info("%s unlinked this device", session.label)
        await session.close()

    async def _on_setup_queue(self, session: PeerSession, h: dict[str, Any]) -> None:
        secure_id = h.get("secure_id", "")
        if session.peer in task_device_ids(self.store, secure_id):
            await self.run_blocking(self.sync.queue_all, secure_id, session.peer)
            session.request_flush()
