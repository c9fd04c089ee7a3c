"""The daemon's connections: one live session per device, accepted or dialled, kept up with linked
devices and static peers, and whether a device is linked (cached, as every frame asks)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from ..background import spawn
from ..device_ids import printable, readable_id
from ..errors import EcosysError, NotFound
from ..store import Store
from ..store.devices import (
    forget_unlinked_beyond,
    get_device,
    list_devices,
    upsert_device,
)
from .identity import Identity
from .protocol import Frame
from .session import PeerSession, SyncPort
from .transport import Incoming, accept, connect

log = logging.getLogger("ecosys.daemon")
RunBlocking = Callable[..., Awaitable[Any]]
IDLE_TIMEOUT = 90.0  # seconds without a frame (sessions PING every third of it)
MAX_UNLINKED_SESSIONS = 32  # sessions with devices that are not linked, all together
MAX_HANDSHAKES = 64  # connections not through their TLS handshake yet
MAX_UNLINKED_DEVICES = 256  # devices seen but not linked, kept in the store (oldest forgotten first)
FrameHandler = Callable[[PeerSession, Frame], Awaitable[None]]


def parse_peer(text: str) -> tuple[str, int]:
    """``host:port`` → (host, port); raise EcosysError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EcosysError(f"not a peer address (HOST:PORT): {text!r}")
    return host.strip("[]"), int(port)


class Peers:
    """Sessions by device id, and the :class:`~.session.SessionHost` every session talks to.

    ``on_frame`` receives the frames that are not sync traffic (linking, largage); ``on_opened`` is told
    of every session that opened, ``on_closed`` the device id of every session that ended."""

    def __init__(self, identity: Identity, name: str, store: Store, sync: SyncPort, run_blocking: RunBlocking,
                 on_frame: FrameHandler, on_closed: Callable[[str], None],
                 on_opened: Callable[[PeerSession], None] = lambda session: None) -> None:
        self.identity = identity
        self.me = identity.device_id
        self.name = name
        self.port = 0  # set once the daemon listens
        self.store = store
        self.sync = sync
        self.run_blocking = run_blocking
        self._on_frame = on_frame
        self._on_closed = on_closed
        self._on_opened = on_opened
        self.idle_timeout = IDLE_TIMEOUT
        self.sessions: dict[str, PeerSession] = {}
        self._dialing: set[str] = set()
        self._linked_cache: dict[str, bool] = {}
        self._handshaking = 0

    # -- what sessions ask -----------------------------------------------------------------------
    def is_linked(self, device_id: str) -> bool:
        """True when ``device_id`` is linked (cached until :meth:`forget` is called for it)."""
        if device_id not in self._linked_cache:
            try:
                self._linked_cache[device_id] = get_device(self.store, device_id).linked
            except NotFound:
                self._linked_cache[device_id] = False
        return self._linked_cache[device_id]

    def forget(self, device_id: str) -> None:
        """``device_id`` was linked or unlinked: read it from the store again."""
        self._linked_cache.pop(device_id, None)

    def changed(self, except_peer: str | None = None) -> None:
        """Something became pending: let every connected linked peer's sender look."""
        for peer, session in self.sessions.items():
            if peer != except_peer and self.is_linked(peer):
                session.request_flush()

    async def on_frame(self, session: PeerSession, frame: Frame) -> None:
        """A frame that is not sync traffic, passed to the daemon's router."""
        await self._on_frame(session, frame)

    def session_opened(self, session: PeerSession) -> bool:
        """Keep one session per device: of two opened together (both sides dialled), the lower id's
        dial wins on both sides; otherwise the newer one is the peer coming back. Devices that are not
        linked get at most ``MAX_UNLINKED_SESSIONS`` sessions all together."""
        existing = self.sessions.get(session.peer)
        if existing is None and not self.is_linked(session.peer) and sum(
                1 for peer in self.sessions if not self.is_linked(peer)) >= MAX_UNLINKED_SESSIONS:
            log.info("refused a session with %s: %d unlinked devices are connected already", session.label,
                     MAX_UNLINKED_SESSIONS)
            spawn(session.close(), "closing a session over the unlinked limit")
            return False
        if existing is not None and not existing.closed.is_set():
            keep_new = existing.stale() or session.dialed == (self.me < session.peer)
            if not keep_new:
                spawn(session.close(), "closing a duplicate session")
                return False
            spawn(existing.close(), "closing a replaced session")
        self.sessions[session.peer] = session
        host = session.conn.address.rsplit(":", 1)[0]
        address = f"{host}:{session.peer_port}" if session.peer_port else None
        upsert_device(self.store, session.peer, name=session.peer_name or None, address=address, connected=True)
        if not self.is_linked(session.peer):
            forget_unlinked_beyond(self.store, MAX_UNLINKED_DEVICES)
        log.info("connected to %s at %s", session.label, session.conn.address)
        if self.is_linked(session.peer):
            session.request_flush()
        self._on_opened(session)
        return True

    def session_closed(self, session: PeerSession) -> None:
        """Forget ``session`` if it is the device's current one and mark the device offline."""
        if self.sessions.get(session.peer) is session:
            del self.sessions[session.peer]
            self._on_closed(session.peer)
            try:
                upsert_device(self.store, session.peer, connected=False)
            except Exception:  # the device may have been forgotten (unlink)
                pass

    # -- finding sessions ------------------------------------------------------------------------
    def connected(self) -> list[PeerSession]:
        """Every open session."""
        return list(self.sessions.values())

    def live(self, device_id: str) -> PeerSession | None:
        """The open session with ``device_id``, if any."""
        return self.sessions.get(device_id)

    async def session_for(self, device_id: str) -> PeerSession:
        """The live session with ``device_id``, dialling its last known address if needed."""
        if device_id in self.sessions:
            return self.sessions[device_id]
        device = get_device(self.store, device_id)
        if device.last_address:
            host, port = parse_peer(device.last_address)
            session = await self.dial(host, port, device_id)
            if session is not None:
                return session
        raise EcosysError(f"device {device.name or readable_id(device_id)} is not reachable now")

    async def serve(self, incoming: Incoming) -> None:
        """Run the session of an accepted connection until it ends (at most ``MAX_HANDSHAKES``
        connections may be in their handshake at once; each has ``HANDSHAKE_TIMEOUT`` to finish it)."""
        if self._handshaking >= MAX_HANDSHAKES:
            incoming.abort()
            return
        self._handshaking += 1
        try:
            conn = await accept(incoming, self.identity)
        except Exception as exc:  # hostile or broken handshakes must not disturb the daemon
            log.info("refused a connection: %s", exc)
            incoming.abort()
            return
        finally:
            self._handshaking -= 1
        if conn.peer_id == self.me:
            await conn.close()
            return
        await PeerSession(self, conn, dialed=False).run()

    async def dial(self, host: str, port: int, expected: str | None = None) -> PeerSession | None:
        """Connect to ``host:port`` (refusing any device but ``expected``) and start a session; None when
        it cannot be reached or the HELLO did not complete within 5 s."""
        key = expected or f"{host}:{port}"
        if key in self._dialing or (expected and expected in self.sessions):
            return self.sessions.get(expected) if expected else None
        self._dialing.add(key)
        try:
            conn = await connect(host, port, self.identity, expected)
        except Exception as exc:  # unreachable, refused, or not the expected device
            log.debug("cannot reach %s:%s: %s", host, port, exc)
            return None
        finally:
            self._dialing.discard(key)
        if conn.peer_id == self.me:
            await conn.close()
            return None
        session = PeerSession(self, conn, dialed=True)
        spawn(session.run(), f"the session with {host}:{port}")
        for _ in range(100):  # wait for HELLO (bounded)
            if self.sessions.get(conn.peer_id) is session or session.closed.is_set():
                break
            await asyncio.sleep(0.05)
        return self.sessions.get(conn.peer_id)

    async def keep_dialing(self, static_peers: list[tuple[str, int]], stop: asyncio.Event) -> None:
        """Dial static peers and linked devices with a known address until connected, every second."""
        while not stop.is_set():
            for host, port, expected in self._dial_targets(static_peers):
                await self.dial(host, port, expected)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    def _dial_targets(self, static_peers: list[tuple[str, int]]) -> list[tuple[str, int, str | None]]:
        targets: list[tuple[str, int, str | None]] = []
        connected = {s.conn.address for s in self.sessions.values()}
        for host, port in static_peers:
            if f"{host}:{port}" in connected or any(s.peer_port == port and s.conn.address.startswith(host)
                                                    for s in self.sessions.values()):
                continue
            targets.append((host, port, None))
        for device in list_devices(self.store):
            if device.linked and device.device_id not in self.sessions and device.last_address:
                try:
                    host, port = parse_peer(device.last_address)
                except EcosysError:
                    continue
                targets.append((host, port, device.device_id))
        return targets

    # -- discovery --------------------------------------------------------------------------------
    async def found(self, device_id: str, hosts: list[str], port: int, name: str) -> None:
        """Zeroconf saw ``device_id`` at ``hosts`` (best first) and ``port``: remember it, and connect if
        it is linked (trying each address in turn)."""
        upsert_device(self.store, device_id, name=printable(name)[:200] or None, address=f"{hosts[0]}:{port}",
                      connected=True)
        if not self.is_linked(device_id):
            forget_unlinked_beyond(self.store, MAX_UNLINKED_DEVICES)
            return
        for host in hosts:
            if device_id in self.sessions or await self.dial(host, port, device_id) is not None:
                if host != hosts[0]:
                    upsert_device(self.store, device_id, address=f"{host}:{port}")
                return

    async def lost(self, device_id: str) -> None:
        """Zeroconf says ``device_id`` left: offline unless a session is still open."""
        if device_id not in self.sessions:
            upsert_device(self.store, device_id, connected=False)

    async def close_all(self) -> None:
        """Close every session (the daemon stops)."""
        for session in list(self.sessions.values()):
            await session.close()
