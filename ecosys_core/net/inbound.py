"""The receiving half of a session: sync messages from the reader to the engine and their answers back.

The reader never waits on the engine: messages go to an inbox, and the worker applies whatever has
arrived meanwhile in one engine call. A delta that streams in DATA frames is fed through a bounded queue
to the thread rebuilding it, so a large file never sits in memory and the socket pauses when the disk
falls behind.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Iterator

from ..errors import ChangeRefused
from ..sync.delta import DeltaError
from ..sync.messages import Members, Message, Modification, NeedState, SignatureTrailer, is_streaming
from .codec import header_message
from .protocol import Frame, ProtocolError

if TYPE_CHECKING:  # pragma: no cover - the session owns its inbound half (same layer)
    from .session import PeerSession

log = logging.getLogger("ecosys.session")
BATCH_MAX = 256  # received messages applied in one engine call
DISCARD = "\0discard"  # stream owner of a refused modification's DATA frames


class Inbound:
    """Received sync messages of one session: parsed, applied in batches, answered."""

    def __init__(self, session: PeerSession) -> None:
        # A proxy, not a reference: the session owns this half, and a cycle between them would keep a
        # closed connection's buffers until the cycle collector runs (0.5 MiB each, thousands under a flood).
        self.session = weakref.proxy(session)
        self.host = session.host
        self.peer = session.peer
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        # a streaming delta's pieces: each DATA frame's buffers (a tuple), its signature trailer, then None
        # at its end, or the exception that ended it
        self._stream: asyncio.Queue[tuple | SignatureTrailer | None | Exception] | None = None
        self._stream_owner: str | None = None
        self._stream_signed = False  # its last DATA frame carries the content's signature
        self._members_waiting = 0  # member lists received and not applied yet

    # -- from the reader -------------------------------------------------------------------------
    async def on_message(self, frame: Frame) -> None:
        """A MODIFICATION, MODIFICATION_DONE or NEED_STATE frame; a modification whose delta follows in
        DATA frames starts a stream."""
        message = header_message(frame.header, frame.payload)
        if isinstance(message, Modification) and frame.header.get("more"):
            if self._stream is not None:
                raise ProtocolError("a modification started inside another one")
            self._stream = asyncio.Queue(maxsize=2)
            self._stream_owner = message.path
            self._stream_signed = message.signed
            message.delta = self._blocks(self._stream)
            self.session.transfers[f"recv:{message.path}"] = {"direction": "receive", "path": message.path,
                                                              "done": 0, "total": message.size}
            if not self._members_waiting:
                # Written ahead from now on, beside the batches still waiting in the inbox: its DATA frames
                # follow it on the wire, and would otherwise wait for all of those to be applied (a member
                # list still waiting could decide whether it is taken: then it waits its turn).
                self.session.side_task(self._receive_streaming(message), "stream-in")
                return
        elif isinstance(message, Members):
            self._members_waiting += 1
        await self._inbox.put(message)

    def discard_stream(self) -> None:
        """The modification just refused has DATA frames coming: drop them."""
        self._stream, self._stream_owner = asyncio.Queue(), DISCARD

    async def on_data(self, frame: Frame) -> None:
        """A DATA frame of the modification streaming in (ProtocolError outside one)."""
        if self._stream is None:
            raise ProtocolError("DATA outside a transfer")
        stream = self._stream
        if self._stream_owner == DISCARD:
            if frame.header.get("end"):
                self._stream = self._stream_owner = None
            return
        transfer = self.session.transfers.get(f"recv:{self._stream_owner}")
        end = frame.header.get("end")
        if end and frame.size and self._stream_signed:  # the content's signature, after its delta
            await stream.put(SignatureTrailer(frame.payload))
        elif frame.size:
            if transfer:
                transfer["done"] += frame.size
            await stream.put(frame.blocks())  # as received: the delta's reader takes views of them
        if end:
            await stream.put(DeltaError(frame.header["error"]) if "error" in frame.header else None)
            self.session.transfers.pop(f"recv:{self._stream_owner}", None)
            self._stream = self._stream_owner = None

    def connection_ended(self) -> None:
        """Fail the delta streaming in, so the thread rebuilding it stops."""
        if self._stream is not None:
            self._stream.put_nowait(ConnectionError("connection closed"))

    def _blocks(self, stream: asyncio.Queue) -> Iterator[bytes]:
        loop = asyncio.get_running_loop()

        def gen() -> Iterator[bytes]:  # pulled from a worker thread
            while True:
                item = asyncio.run_coroutine_threadsafe(stream.get(), loop).result()
                if item is None:
                    return
                if isinstance(item, Exception):
                    raise DeltaError(str(item))
                if isinstance(item, tuple):  # a DATA frame's payload, in the buffers it arrived in
                    yield from item
                else:
                    yield item

        return gen()

    # -- the worker ------------------------------------------------------------------------------
    async def work(self) -> None:
        """Apply what arrives, batch by batch, for as long as the session lasts."""
        while True:
            # Whatever has arrived meanwhile is applied in one engine call (one thread hop, one lock, one
            # folder sync per folder). A delta still streaming in ends a batch and is written ahead on
            # its own, while what arrives after it is applied.
            batch = [await self._inbox.get()]
            while len(batch) < BATCH_MAX and not is_streaming(batch[-1]) and not self._inbox.empty() \
                    and not isinstance(batch[-1], Members):
                batch.append(self._inbox.get_nowait())
            if is_streaming(batch[-1]):
                self.session.side_task(self._receive_streaming(batch.pop()), "stream-in")
            if batch:
                try:
                    await self._apply(batch)
                finally:
                    self._members_waiting -= sum(isinstance(m, Members) for m in batch)

    async def _drain(self, message: Message) -> None:
        """Consume what the engine left of a delta stream, so the reader never blocks on it."""
        if is_streaming(message):
            try:
                await self.host.run_blocking(lambda: [None for _ in message.delta])
            except Exception:
                pass

    async def _receive_streaming(self, message: Modification) -> None:
        key = None
        try:
            key = await self.host.run_blocking(self.host.sync.prebuild, self.peer, message)
        except Exception:  # the apply below finds the delta used up and asks for the whole content
            log.exception("could not write %s from %s ahead", message.path, self.session.label)
        try:
            await self._apply([message])
        finally:
            if key is not None:
                await self.host.run_blocking(self.host.sync.discard_prebuilt, key)

    async def _apply(self, batch: list[Message]) -> None:
        try:
            results = await self.host.run_blocking(self.host.sync.receive_many, self.peer, batch)
        except Exception as exc:  # the engine call itself failed: every message of the batch did
            results = [exc] * len(batch)
        finally:
            await self._drain(batch[-1])
        applied = False
        for message, result in zip(batch, results):
            applied = self._settle(message, result) or applied
        if isinstance(batch[-1], Members) and not isinstance(results[-1], Exception):
            self.host.changed()  # the list goes on to the other members; this peer gets ours if it differs
        if applied:  # what it queued goes to the others
            self.host.changed(except_peer=self.peer)
        if self.host.sync.owes_back(self.peer):  # a conflict copy, a merge or our departure: sent now
            self.session.request_flush()

    def _settle(self, message: Message, result: list[Message] | Exception) -> bool:
        """Send the answers (or the error) for one received message; True when it changed something here."""
        session = self.session
        if isinstance(result, Exception):
            if isinstance(result, ChangeRefused):
                log.warning("refused from %s: %s", session.label, result)
            else:
                log.error("could not apply %s from %s", type(message).__name__, session.label, exc_info=result)
            session.answer(("ERROR", {"flag": "ERROR", "device_id": self.host.me, "error": str(result)[:300],
                                      "secure_id": message.secure_id, "path": message.path[:4000]}, b""))
            answers: list[Message] = []
        else:
            answers = result
        if not isinstance(message, (Modification, NeedState)):  # MODIFICATION_DONE ends our send
            session.settled(message.secure_id, message.path)
        elif isinstance(message, NeedState):  # its answer goes as an answer, outside the window
            session.answered(message.secure_id, message.path)
        for answer in answers:
            session.answer(answer)
        if isinstance(message, Modification) and not answers and not isinstance(result, Exception):
            session.answer(("ERROR", {"flag": "ERROR", "device_id": self.host.me, "secure_id": message.secure_id,
                                      "path": message.path, "error": "change could not be applied"}, b""))
        return isinstance(message, Modification) and not any(isinstance(a, NeedState) for a in answers)
