"""One authenticated connection with a peer: HELLO, then frames both ways.

Four tasks per session: the reader dispatches frames (never waiting on the engine, so a delta being
received keeps flowing), the worker runs engine calls one at a time in a thread, the sender writes
answers first and then pending modifications, and the streamer sends the large ones, one at a time (the
seed's per-device lock), with their delta in DATA frames pulled lazily from disk, while the sender goes
on with the small files behind them. A slow peer only slows its own session.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from typing import Any, Awaitable, Callable, Iterator, Protocol, Sequence

from ..background import spawn
from ..device_ids import printable, short_id_text
from ..sync.membership import digest
from ..sync.messages import Message, Modification, SignatureTrailer, is_streaming
from .codec import inline_delta, message_header
from .inbound import Inbound
from .protocol import MAX_PAYLOAD, PROTOCOL_VERSIONS, SIGNED_STREAMS, Frame, ProtocolError, encode_frame, frame_head
from .transport import Connection

log = logging.getLogger("ecosys.session")
UNLINKED_ALLOWED = frozenset({"HELLO", "PING", "ERROR", "LINK", "LINK_ACCEPTED", "LINK_REFUSED",
                              "OTDL", "MOTDL", "DATA", "CANCEL", "OFFER_ACCEPTED", "OFFER_REFUSED", "OFFER_DONE"})
DATA_FRAME = 1 << 20
SEND_GROUP = 64  # pending modifications prepared in one engine call
STREAMS_QUEUED = 8  # large modifications waiting for the streamer before the sender waits too
# What may be sent and not answered yet: the receiver's reader never waits on its engine, so without a
# window a sender faster than the receiver's disk fills the receiver's inbox (a 100,000-file first sync
# held most of its content there). Streamed deltas have their own bound (the receiver's stream queue).
# 4 MiB (stop 25: 16) keeps two batches of small files in flight, which the receiver's apply keeps up with.
WINDOW_BYTES = 4 << 20
WINDOW_MESSAGES = 1024
WINDOW_WAIT = 30.0  # seconds: past that, a lost answer must not stall the session for good
PENDING_PAGE = 4096  # pending items read at a time (100,000 at once held 50 MiB)


class SyncPort(Protocol):
    """The sync engine's calls a session makes (``sync.engine.SyncEngine`` has them)."""

    def pending(self, peer: str, after: Any = (0, 0), limit: int | None = None) -> list[Any]:
        """What ``peer`` is owed: items with ``secure_id``, ``path``, ``base_hash``, ``version`` and
        ``cursor``; a page of ``limit`` after the cursor ``after`` when given."""

    def modifications(self, peer: str, items: Sequence[Any]) -> list[Modification | None]:
        """The events of pending ``items``."""

    def receive_many(self, peer: str, messages: Sequence[Message]) -> list[list[Message] | Exception]:
        """Apply ``messages`` from ``peer``; per message its answers or its error."""

    def prebuild(self, peer: str, m: Modification) -> Any:
        """Write a streaming delta's content ahead; a key for :meth:`discard_prebuilt` or None."""

    def discard_prebuilt(self, key: Any) -> None:
        """Remove what :meth:`prebuild` wrote if the apply did not use it."""

    def owes_back(self, peer: str) -> bool:
        """True (once) when applying ``peer``'s changes queued something for ``peer`` itself."""

    def membership_for(self, peer: str) -> list[Any]:
        """The member lists (``Members`` messages, with ``secure_id`` and ``members``) for ``peer``."""


class SessionHost(Protocol):
    """What a session needs of the process running it (``net.peers.Peers`` is one)."""

    me: str
    name: str
    port: int
    idle_timeout: float  # seconds without a frame before a session is closed
    sync: SyncPort

    def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Awaitable[Any]:
        """Run a blocking call (engine, store) in a worker thread."""

    def is_linked(self, device_id: str) -> bool:
        """True when ``device_id`` is linked (sync frames from others are refused)."""

    def session_opened(self, session: "PeerSession") -> bool:
        """HELLO done; False when this session must close (another one with the peer wins)."""

    def session_closed(self, session: "PeerSession") -> None:
        """The connection ended."""

    def changed(self, except_peer: str | None = None) -> None:
        """Something became pending for the other peers."""

    async def on_frame(self, session: "PeerSession", frame: Frame) -> None:
        """A frame that is not sync traffic (LINK, SHARE, largage…); must not wait for a person."""


class PeerSession:
    """A live session with device ``peer``."""

    def __init__(self, host: SessionHost, conn: Connection, dialed: bool) -> None:
        self.host = host
        self.conn = conn
        self.peer = conn.peer_id
        self.dialed = dialed
        self.peer_name = ""
        self.peer_port: int | None = None
        self.protocol = PROTOCOL_VERSIONS[-1]
        self._wlock = asyncio.Lock()
        self._streams: asyncio.Queue[Modification] = asyncio.Queue(STREAMS_QUEUED)  # for the streamer
        self._answers: asyncio.Queue[Message | tuple[str, dict, bytes]] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._flush = False
        self.in_flight: dict[tuple[str, str], dict[str, int]] = {}  # sent, not answered yet: the version sent
        self._held_back: set[tuple[str, str]] = set()  # a newer version pending while in flight
        self._unanswered: dict[tuple[str, str], int] = {}  # in the window: inline bytes sent, not answered
        self._unanswered_bytes = 0
        self._room = asyncio.Event()  # set when the window may have room, or an answer waits to go
        self._lists_sent: dict[str, str] = {}  # secure_id → digest of the member list last sent
        self.transfers: dict[str, dict[str, Any]] = {}
        self.closed = asyncio.Event()
        self.opened_at = time.monotonic()
        self.last_heard = self.opened_at
        self._tasks: list[asyncio.Task] = []
        self.inbound = Inbound(self)

    # -- lifecycle -----------------------------------------------------------------------------
    async def run(self) -> None:
        """HELLO, then serve the connection until it ends."""
        try:
            await self._hello()
            if not self.host.session_opened(self):
                return
            self._tasks = [asyncio.create_task(self.inbound.work(), name="worker"),
                           asyncio.create_task(self._send_loop(), name="sender"),
                           asyncio.create_task(self._stream_loop(), name="streamer"),
                           asyncio.create_task(self._keepalive(), name="keepalive")]
            for task in self._tasks:
                task.add_done_callback(self._helper_ended)
            while True:
                frame = await self.conn.read_frame()
                self.last_heard = time.monotonic()
                await self._dispatch(frame)
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, OSError) as exc:
            log.info("connection with %s ended: %s", self.label, exc.__class__.__name__)
        except ProtocolError as exc:
            log.warning("closing connection with %s: %s", self.label, exc)
            await self._stop_helpers()  # the ERROR is the last frame: nothing queued goes after it
            await self._try_send({"flag": "ERROR", "device_id": self.host.me, "error": str(exc)[:300]})
        except asyncio.CancelledError:
            pass
        finally:
            await self._stop_helpers()  # then nothing of them refers back here
            self.inbound.connection_ended()
            self.closed.set()
            self.host.session_closed(self)
            await self.conn.close()

    async def _stop_helpers(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """End the connection (the session ends with it)."""
        await self.conn.close()

    async def _keepalive(self) -> None:
        """PING the peer every third of the idle timeout; close when nothing was heard for a whole one
        (a peer that went away without a word, or a connection held open on purpose)."""
        timeout = self.host.idle_timeout
        while True:
            await asyncio.sleep(timeout / 3)
            if time.monotonic() - self.last_heard > timeout:
                log.info("closing the idle connection with %s (nothing heard for %.0f s)", self.label, timeout)
                await self.conn.close()
                return
            await self._try_send({"flag": "PING", "device_id": self.host.me})

    def _helper_ended(self, task: asyncio.Task) -> None:
        """The worker and the sender run as long as the connection; one that ended failed (the store
        refused a write, say). A session without it would stay connected but mute or deaf, so it is
        closed: the peer reconnects to a fresh session and what was pending is sent again."""
        if task.cancelled() or self.closed.is_set():
            return
        exc = task.exception()
        if isinstance(exc, (ConnectionError, ssl.SSLError, OSError)):  # the reader sees the end too
            log.info("the %s of the session with %s stopped: %s", task.get_name(), self.label, type(exc).__name__)
        else:
            log.error("the %s of the session with %s failed; closing the connection", task.get_name(),
                      self.label, exc_info=exc)
        spawn(self.conn.close(), f"closing the session with {self.label}")

    def stale(self) -> bool:
        """True when this session is ending or old enough that a new connection means the peer came back
        (a half-open connection, after a network drop, is never noticed otherwise)."""
        return self.closed.is_set() or self.conn.at_eof() or time.monotonic() - self.opened_at > 5.0

    @property
    def label(self) -> str:
        return f"{self.peer_name or '?'} ({short_id_text(self.peer)})"

    async def _hello(self) -> None:
        await self.send({"flag": "HELLO", "device_id": self.host.me, "name": self.host.name,
                         "versions": list(PROTOCOL_VERSIONS), "port": self.host.port})
        frame = await asyncio.wait_for(self.conn.read_frame(), 15)
        if frame.flag != "HELLO" or frame.header["device_id"] != self.peer:
            raise ProtocolError("the first frame must be a HELLO from the certificate's device")
        common = set(PROTOCOL_VERSIONS) & {v for v in frame.header.get("versions", []) if isinstance(v, int)}
        if not common:
            raise ProtocolError("no common protocol version")
        self.protocol = max(common)
        self.peer_name = printable(str(frame.header.get("name", "")))[:200]
        port = frame.header.get("port")
        self.peer_port = port if isinstance(port, int) and 0 < port < 65536 else None

    # -- sending -------------------------------------------------------------------------------
    async def send(self, header: dict[str, Any], payload: bytes = b"") -> None:
        await self._write([encode_frame(header, payload)])

    async def _try_send(self, header: dict[str, Any]) -> None:
        try:
            await asyncio.wait_for(self.send(header), 2)
        except Exception:  # the connection is going away anyway
            pass

    def answer(self, item: Message | tuple[str, dict, bytes]) -> None:
        """Queue a message or a raw (flag, header, payload) to send before any pending modification."""
        self._answers.put_nowait(item)
        self._wake.set()
        self._room.set()

    def settled(self, secure_id: str, path: str) -> None:
        """The peer answered for ``path`` (done or error): it is no longer in flight, and a newer version
        held back meanwhile is sent now rather than at the next unrelated change."""
        key = (secure_id, path)
        self.in_flight.pop(key, None)
        self.answered(secure_id, path)
        if key in self._held_back:
            self._held_back.discard(key)
            self.request_flush()

    def answered(self, secure_id: str, path: str) -> None:
        """The peer answered the modification of ``path`` (done, error, or asking for the whole content):
        its bytes leave the send window."""
        size = self._unanswered.pop((secure_id, path), None)
        if size is not None:
            self._unanswered_bytes -= size
            self._room.set()

    def _window_full(self) -> bool:
        return self._unanswered_bytes >= WINDOW_BYTES or len(self._unanswered) >= WINDOW_MESSAGES

    async def _wait_for_room(self) -> None:
        """Wait until the send window has room, sending answers meanwhile (the peer may be waiting on
        them to send its own); give up waiting after WINDOW_WAIT seconds without any answer."""
        while self._window_full():
            if not self._answers.empty():
                await self._send_answers()
                continue
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), WINDOW_WAIT)
            except asyncio.TimeoutError:
                log.info("no answer from %s for %.0f s with %d changes unanswered; sending on", self.label,
                         WINDOW_WAIT, len(self._unanswered))
                self._unanswered.clear()
                self._unanswered_bytes = 0

    def _sent(self, messages: list[Modification]) -> None:
        for m in messages:
            key = (m.secure_id, m.path)
            self.in_flight[key] = m.version
            size = len(m.delta) if isinstance(m.delta, (bytes, bytearray, memoryview)) else 0
            self._unanswered_bytes += size - self._unanswered.get(key, 0)
            self._unanswered[key] = size

    def ask_resend(self, secure_id: str) -> None:
        """Ask the peer to send again what it has pending for task ``secure_id`` (refused while the task
        waited here)."""
        self.answer(("RESEND", {"flag": "RESEND", "device_id": self.host.me, "secure_id": secure_id}, b""))

    def request_flush(self) -> None:
        """Send what is pending for this peer as soon as the sender is free."""
        self._flush = True
        self._wake.set()

    async def _send_loop(self) -> None:
        while True:
            if not self._answers.empty():
                await self._send_answers()
                continue
            if self._flush:
                self._flush = False
                await self._send_member_lists()
                await self._send_pending()
                continue
            await self._wake.wait()
            self._wake.clear()

    async def _send_pending(self) -> None:
        """Send what is pending for the peer, a page at a time, within the window."""
        cursor = (0, 0)
        while True:
            pending = await self.host.run_blocking(self.host.sync.pending, self.peer, cursor, PENDING_PAGE)
            todo = [item for item in pending if (item.secure_id, item.path) not in self.in_flight]
            self._held_back.update((item.secure_id, item.path) for item in pending
                                   if self.in_flight.get((item.secure_id, item.path), item.version) != item.version)
            for start in range(0, len(todo), SEND_GROUP):
                await self._wait_for_room()
                messages = await self.host.run_blocking(self._prepare, todo[start:start + SEND_GROUP])
                ready = [m for m in messages if m is not None]
                self._sent(ready)
                await self._send_all(ready)
                await self._send_answers()  # answers overtake the rest of the queue
            if len(pending) < PENDING_PAGE:
                return
            cursor = pending[-1].cursor

    async def _send_member_lists(self) -> None:
        """Member lists first (what follows may depend on them): each task's, when it differs from the
        one last sent in this session (so every meeting starts with all of them)."""
        lists = await self.host.run_blocking(self.host.sync.membership_for, self.peer)
        fresh = []
        for message in lists:
            key = digest(message.members)
            if self._lists_sent.get(message.secure_id) != key:
                self._lists_sent[message.secure_id] = key
                fresh.append(message)
        await self._send_all(fresh)

    def _prepare(self, items: list[Any]) -> list[Modification | None]:
        """(In a worker thread.) The modifications of pending ``items``, small deltas read inline."""
        return [inline_delta(m) for m in self.host.sync.modifications(self.peer, items)]

    async def _send_answers(self) -> None:
        items = []
        while not self._answers.empty():
            items.append(self._answers.get_nowait())
        await self._send_all(items)

    async def _send_all(self, items: list[Message | tuple[str, dict, bytes]]) -> None:
        """Send ``items`` in order: the frames that carry all they have in one write (thousands of small
        files cost one drain per group, not one each). A modification whose delta is too large to
        carry inline goes to the streamer (:meth:`_stream_loop`), and the frames that follow are sent
        meanwhile, between its DATA frames: a second large file waits its turn without holding back
        the small ones behind it."""
        frames: list[bytes] = []
        for item in items:
            if isinstance(item, tuple):
                frames.append(encode_frame(item[1], item[2]))
                continue
            if is_streaming(item):
                item = await self.host.run_blocking(inline_delta, item)
                if is_streaming(item):
                    await self._write(frames)
                    frames = []
                    await self._streams.put(item)
                    continue
            frames.append(encode_frame(*message_header(item, self.host.me)))
        await self._write(frames)

    async def _write(self, frames: list[bytes]) -> None:
        if frames:
            async with self._wlock:
                self.conn.writelines(frames)
                await self.conn.drain()

    async def _stream_loop(self) -> None:
        """Stream the large modifications the sender queued, one after the other (the DATA frames of one
        modification carry no name: two at once would interleave)."""
        while True:
            await self._stream_out(await self._streams.get())

    async def _stream_out(self, message: Modification) -> None:
        """Send ``message`` and its delta in DATA frames."""
        if self.protocol < SIGNED_STREAMS:
            message.signed = False  # its signature trailer is not sent: the peer cuts the content itself
        header, _ = message_header(message, self.host.me)
        key = f"send:{message.path}"
        self.transfers[key] = {"direction": "send", "path": message.path, "done": 0, "total": message.size}
        blocks: Iterator[bytes] = iter(message.delta)
        try:
            await self._write([encode_frame(header)])
            data = {"flag": "DATA", "device_id": self.host.me}
            buffer = bytearray()
            error = None
            trailer = b""
            while True:
                try:
                    block = await self.host.run_blocking(next, blocks, None)
                except Exception as exc:  # the file changed or vanished while being read
                    block, error = None, f"{type(exc).__name__}: {exc}"
                if isinstance(block, SignatureTrailer):  # goes in the last DATA frame, if it fits one
                    trailer = block.data if message.signed and len(block) <= MAX_PAYLOAD else b""
                    continue
                if block:
                    self.transfers[key]["done"] += len(block)
                    if not buffer and DATA_FRAME <= len(block) <= MAX_PAYLOAD:
                        # a whole content's 1 MiB literals are frames as they come, encrypted where
                        # they lie: four copies of each fewer than through the buffer (0.1-0.2 s of
                        # CPU per 256 MiB sent for three of them)
                        await self._write([frame_head(data, len(block)), block])
                        continue
                    buffer += block
                if buffer and (block is None or len(buffer) >= DATA_FRAME):
                    await self._write([encode_frame(data, bytes(buffer[start:start + MAX_PAYLOAD]))
                                       for start in range(0, len(buffer), MAX_PAYLOAD)])
                    buffer.clear()
                if block is None:
                    end = {"flag": "DATA", "device_id": self.host.me, "end": True}
                    if error:
                        end["error"] = error[:300]
                    last = b"" if error else trailer
                    await self._write([frame_head(end, len(last)), last])
                    return
        finally:
            self.transfers.pop(key, None)

    def side_task(self, coro: Any, name: str) -> None:
        """Run ``coro`` beside the worker and the sender, ending with the session like them."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.append(task)
        task.add_done_callback(self._side_task_ended)

    def _side_task_ended(self, task: asyncio.Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
        if not task.cancelled() and task.exception() is not None:
            self._helper_ended(task)

    # -- receiving -----------------------------------------------------------------------------
    async def _dispatch(self, frame: Frame) -> None:
        h = frame.header
        if h["device_id"] != self.peer:
            raise ProtocolError("device_id differs from the connection's certificate")
        flag = frame.flag
        if flag not in UNLINKED_ALLOWED and not self.host.is_linked(self.peer):
            log.warning("refused %s from unlinked device %s", flag, self.label)
            await self.send({"flag": "ERROR", "device_id": self.host.me, "error": f"{flag} refused: not linked",
                             **({"secure_id": h["secure_id"]} if "secure_id" in h else {}),
                             **({"path": h["path"]} if "path" in h else {})})
            if flag == "MODIFICATION" and h.get("more"):
                self.inbound.discard_stream()
            return
        if flag == "DATA" and "offer_id" not in h:
            await self.inbound.on_data(frame)
        elif flag in ("MODIFICATION", "MODIFICATION_DONE", "NEED_STATE", "MEMBERS"):
            await self.inbound.on_message(frame)
        elif flag == "ERROR":
            log.warning("%s says: %s", self.label, h.get("error", "?"))
            if "secure_id" in h and "path" in h:
                self.settled(h["secure_id"], h["path"])
        elif flag == "RESEND":  # its task waited (its app ran): what is pending for it goes again now
            self.request_flush()
        elif flag == "PING" or flag == "HELLO":
            pass
        else:  # largage DATA too: its offer routes it
            await self.host.on_frame(self, frame)
