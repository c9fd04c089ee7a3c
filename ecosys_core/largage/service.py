"""The largage side of a running daemon: offers in and out over the peers' sessions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Protocol

from ..background import spawn
from ..device_ids import readable_id
from ..errors import EcosysError, UnsafePath
from ..net.protocol import Frame
from ..net.session import PeerSession
from ..prompts import Prompts, is_yes
from ..questions import PendingQuestions
from .files import (
    CHUNK,
    QueueReader,
    build_manifest,
    extract_offer,
    non_clobbering,
    parse_manifest,
)
from .offers import Offer, OfferState

log = logging.getLogger("ecosys.largage")
RunBlocking = Callable[..., Awaitable[Any]]


class PeerDirectory(Protocol):
    """What largage needs of the daemon's connections."""

    def is_linked(self, device_id: str) -> bool:
        """True when ``device_id`` is one of this person's linked devices."""

    def live(self, device_id: str) -> PeerSession | None:
        """The open session with ``device_id``, if any."""

    async def session_for(self, device_id: str) -> PeerSession:
        """A session with ``device_id``, dialling it if needed (EcosysError when unreachable)."""


class LargageService:
    """Offers in and out. ``settings`` reads a stored setting (None when unset); ``run_blocking`` runs
    a blocking call off the event loop."""

    def __init__(self, me: str, name: str, folder: Path, peers: PeerDirectory, prompts: Prompts,
                 settings: Callable[[str], str | None], run_blocking: RunBlocking,
                 questions: PendingQuestions | None = None) -> None:
        self.me, self.name = me, name
        self.questions = questions or PendingQuestions()
        self.folder = folder
        self.peers = peers
        self.prompts = prompts
        self.settings = settings
        self.run_blocking = run_blocking
        self.offers: dict[str, Offer] = {}
        self.cooldown_until: dict[str, float] = {}
        for leftover in self.folder.glob(".partial-*"):  # a crash left them: they were never accepted data
            shutil.rmtree(leftover, ignore_errors=True)

    def _setting(self, key: str, default: float) -> float:
        try:
            return float(self.settings(key) or default)
        except ValueError:
            return default

    @property
    def everyone(self) -> bool:
        """True when offers from unlinked devices are asked about too (setting ``largage_everyone``)."""
        return self.settings("largage_everyone") == "1"

    # -- sending -----------------------------------------------------------------------------
    async def send(self, peer: str, paths: list[str]) -> dict[str, Any]:
        """Offer ``paths`` to device ``peer``; returns at once with the offer (the transfer goes on)."""
        kind, items, manifest = await self.run_blocking(build_manifest, [Path(p) for p in paths])
        session = await self.peers.session_for(peer)
        offer = Offer(secrets.token_hex(8), "send", peer, session.peer_name, kind, manifest,
                      sum(e["size"] for e in manifest), paths=items)
        self.offers[offer.offer_id] = offer
        payload = json.dumps({"files": manifest}).encode()
        await session.send({"flag": kind, "device_id": self.me, "offer_id": offer.offer_id,
                            "name": self.name, "total": offer.total}, payload)
        return offer.public()

    async def _stream(self, session: PeerSession, offer: Offer) -> None:
        """Stream ``offer``'s file contents in DATA frames (read by a worker thread)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=4)
        offer.move(OfferState.SENDING)  # refused when a cancel got there first: nothing is read
        producer = loop.run_in_executor(None, _produce_stream, offer, queue, loop)
        try:
            buffer = bytearray()
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item:
                    buffer += item
                if buffer and (item is None or len(buffer) >= CHUNK):
                    await session.send({"flag": "DATA", "device_id": self.me, "offer_id": offer.offer_id},
                                       bytes(buffer))
                    buffer.clear()
                if item is None:
                    await session.send({"flag": "DATA", "device_id": self.me, "offer_id": offer.offer_id,
                                        "end": True})
                    return
        except BaseException as exc:
            was_cancelled = offer.cancel.is_set()
            offer.cancel.set()
            offer.move_if(*((OfferState.CANCELLED, "") if was_cancelled else (OfferState.FAILED, str(exc))))
            while not producer.done():  # unblock the producer so its thread ends
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0.01)
            raise

    async def _send_guarded(self, session: PeerSession, offer: Offer) -> None:
        try:
            await self._stream(session, offer)
        except BaseException as exc:  # noqa: BLE001 - reported in the offer's state
            offer.move_if(OfferState.FAILED, str(exc))
            try:
                await session.send({"flag": "CANCEL", "device_id": self.me, "offer_id": offer.offer_id})
            except Exception:
                pass
        else:
            offer.move_if(OfferState.SENT)

    # -- receiving -----------------------------------------------------------------------------
    async def on_offer(self, session: PeerSession, frame: Frame) -> None:
        """An OTDL/MOTDL offer from ``session``'s device: checked, then asked about, then received."""
        offer_id = frame.header.get("offer_id", "")

        def refuse(reason: str) -> None:
            session.answer(("OFFER_REFUSED", {"flag": "OFFER_REFUSED", "device_id": self.me,
                                              "offer_id": offer_id, "error": reason}, b""))

        if not isinstance(offer_id, str) or not offer_id or len(offer_id) > 64 or offer_id in self.offers:
            refuse("bad offer id")
            return
        linked = self.peers.is_linked(session.peer)
        if not linked and not self.everyone:
            log.info("refused an offer from unlinked device %s", session.label)
            refuse("this device only accepts offers from linked devices")
            return
        wait = self.cooldown_until.get(session.peer, 0) - time.time()
        if wait > 0 and not linked:
            refuse(f"declined recently; this device refuses offers from yours for {wait:.0f} s more")
            return
        try:
            manifest = parse_manifest(frame.payload)
        except (ValueError, UnsafePath) as exc:
            refuse(f"bad manifest: {exc}")
            return
        total = sum(e["size"] for e in manifest)
        free = shutil.disk_usage(self.folder).free
        if total > free:
            refuse(f"not enough space ({total} bytes offered, {free} free)")
            return
        if not self.questions.begin(session.peer, linked):
            refuse("busy: earlier offers from your device are still waiting for an answer")
            return
        offer = Offer(offer_id, "receive", session.peer, session.peer_name, frame.flag, manifest, total)
        self.offers[offer_id] = offer
        try:
            answer = await self._ask(session, offer, linked)
        finally:
            self.questions.end(session.peer)
        if answer is None:
            cancelled = offer.cancel.is_set()
            offer.move_if(OfferState.CANCELLED if cancelled else OfferState.EXPIRED)
            refuse("the offer was cancelled" if cancelled else "nobody answered in time")
        elif not is_yes(answer):
            offer.move_if(OfferState.DECLINED)
            if linked:  # the person's own devices may ask again at once
                refuse("the other device declined")
            else:
                cooldown = self._setting("largage_cooldown_s", 300.0)
                self.cooldown_until[session.peer] = time.time() + cooldown
                refuse(f"the other device declined; it refuses offers from this device for {cooldown:.0f} s")
        elif offer.move_if(OfferState.RECEIVING):
            offer.queue = asyncio.Queue(maxsize=8)
            session.answer(("OFFER_ACCEPTED", {"flag": "OFFER_ACCEPTED", "device_id": self.me,
                                               "offer_id": offer_id}, b""))
            spawn(self._receive(session, offer), f"receiving offer {offer.offer_id}")

    async def _ask(self, session: PeerSession, offer: Offer, linked: bool) -> str | None:
        """The person's answer to the offer's prompt; None when it expired or was cancelled."""
        timeout = self._setting("largage_offer_timeout_s", 120.0)
        names = ", ".join(e["name"] for e in offer.files[:5]) + (" …" if len(offer.files) > 5 else "")
        what = "a folder" if offer.kind == "MOTDL" else ("a file" if len(offer.files) == 1 else "files")
        context = (f"{session.peer_name or 'A device'} (id {readable_id(session.peer)}{', linked' if linked else ', not linked'}) "
                   f"wants to send you {what}: {len(offer.files)} file(s), {offer.total} bytes: {names}. "
                   "Accept? (yes/no)")
        try:
            return await self.prompts.ask_async(offer.kind, context, timeout=timeout, cancel=offer.cancel)
        except EcosysError:
            return None

    async def _receive(self, session: PeerSession, offer: Offer) -> None:
        partial = self.folder / f".partial-{offer.offer_id}"
        partial.mkdir(parents=True)
        assert offer.queue is not None
        reader = QueueReader(offer.queue, asyncio.get_running_loop(), offer)
        try:
            await self.run_blocking(extract_offer, reader, partial, offer.files, offer.add_done)
            saved = []
            for entry in sorted(partial.iterdir()):
                target = non_clobbering(self.folder, entry.name)
                os.rename(entry, target)
                saved.append(target.name)
            offer.saved = saved
            offer.move(OfferState.DONE)
            log.info("received %s from %s into %s", ", ".join(saved), session.label, self.folder)
            session.answer(("OFFER_DONE", {"flag": "OFFER_DONE", "device_id": self.me,
                                           "offer_id": offer.offer_id}, b""))
        except BaseException as exc:
            if offer.state is OfferState.RECEIVING:
                offer.move(OfferState.CANCELLED if offer.cancel.is_set() else OfferState.FAILED, str(exc))
                log.warning("largage %s from %s failed: %s", offer.offer_id, session.label, exc)
                if not offer.cancel.is_set():
                    session.answer(("CANCEL", {"flag": "CANCEL", "device_id": self.me,
                                               "offer_id": offer.offer_id, "error": str(exc)[:300]}, b""))
            while offer.queue.qsize():
                offer.queue.get_nowait()
            if not isinstance(exc, Exception):
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
            offer.queue = None

    async def on_data(self, session: PeerSession, frame: Frame) -> None:
        """A DATA frame of an offer being received (late frames of a cancelled offer are dropped)."""
        offer = self.offers.get(frame.header["offer_id"])
        if offer is None or offer.direction != "receive" or offer.peer != session.peer:
            return
        if offer.queue is None or offer.state is not OfferState.RECEIVING:
            return
        if frame.payload:
            await offer.queue.put(frame.payload)
        if frame.header.get("end"):
            await offer.queue.put(None)

    async def on_answer(self, session: PeerSession, frame: Frame) -> None:
        """OFFER_ACCEPTED / OFFER_REFUSED / OFFER_DONE / CANCEL from the peer."""
        offer = self.offers.get(frame.header.get("offer_id", ""))
        if offer is None or offer.peer != session.peer:
            return
        flag = frame.flag
        if flag == "OFFER_ACCEPTED" and offer.direction == "send" and offer.state is OfferState.WAITING:
            spawn(self._send_guarded(session, offer), f"sending offer {offer.offer_id}")
        elif flag == "OFFER_REFUSED" and offer.state is OfferState.WAITING:
            offer.move(OfferState.DECLINED, str(frame.header.get("error", "")))
        elif flag == "OFFER_DONE" and offer.direction == "send" and offer.move_if(OfferState.DONE):
            offer.done = offer.total
        elif flag == "CANCEL":
            offer.cancel.set()
            if offer.state.active:
                offer.move(OfferState.CANCELLED, str(frame.header.get("error", "cancelled by the other side")))

    def peer_gone(self, peer: str) -> None:
        """The connection with ``peer`` ended: its unfinished offers fail (partial data is removed)."""
        for offer in self.offers.values():
            if offer.peer == peer and offer.state.active:
                offer.cancel.set()
                offer.move(OfferState.FAILED, "the connection ended")

    async def cancel(self, offer_id: str | None) -> list[str]:
        """Cancel one offer (or every unfinished one): both sides stop, partial data is removed."""
        cancelled = []
        for offer in list(self.offers.values()):
            if offer_id not in (None, offer.offer_id) or not offer.state.active:
                continue
            offer.cancel.set()
            offer.move(OfferState.CANCELLED)
            session = self.peers.live(offer.peer)
            if session is not None:
                session.answer(("CANCEL", {"flag": "CANCEL", "device_id": self.me, "offer_id": offer.offer_id}, b""))
            cancelled.append(offer.offer_id)
        return cancelled


def _produce_stream(offer: Offer, queue: asyncio.Queue, loop: asyncio.AbstractEventLoop) -> None:
    """(In a worker thread.) Put ``offer``'s file contents, one after the other in manifest order, into
    ``queue`` in blocks of at most ``CHUNK``; then None, or the exception that stopped it (a file that
    changed size since it was offered, which the receiver could not tell from the next one)."""
    def put(item: Any) -> None:
        asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()

    try:
        for (path, _), entry in zip(offer.paths, offer.files):
            left = entry["size"]
            with open(path, "rb") as fh:
                while left:
                    if offer.cancel.is_set():
                        raise EcosysError("cancelled")
                    block = fh.read(min(CHUNK, left))
                    if not block:
                        raise EcosysError(f"{entry['name']} got shorter since it was offered")
                    put(block)
                    offer.add_done(len(block))
                    left -= len(block)
                if fh.read(1):
                    raise EcosysError(f"{entry['name']} got longer since it was offered")
        put(None)
    except BaseException as exc:  # noqa: BLE001 - reported to the consumer
        put(exc)
