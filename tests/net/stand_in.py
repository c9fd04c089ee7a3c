"""A ``SessionHost`` stand-in for tests of one real session on real TLS, where what the daemon behind it
does must be provoked at one exact place: linked to everyone, asks for a flush on opening, notes closes."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, Callable

from ecosys_core.net.protocol import PROTOCOL_VERSIONS, encode_frame
from ecosys_core.net.session import PeerSession
from ecosys_core.net.transport import Incoming, accept, connect, listen


class StandInHost:
    def __init__(self, me: str, name: str) -> None:
        self.me, self.name, self.port, self.idle_timeout = me, name, 0, 90.0
        self.closed: list[PeerSession] = []
        self.sessions: list[asyncio.Task] = []

    def session_opened(self, session: PeerSession) -> bool:
        session.request_flush()
        return True

    def session_closed(self, session: PeerSession) -> None:
        self.closed.append(session)

    def is_linked(self, device_id: str) -> bool:
        return True

    def changed(self, except_peer: str | None = None) -> None:
        pass

    async def on_frame(self, session: PeerSession, frame: Any) -> None:
        pass


class ThreadedHost(StandInHost):
    """A stand-in whose blocking calls (to ``sync``, the engine stand-in given) run in two worker
    threads, as the daemon's do; shut ``pool`` down after the test."""

    def __init__(self, me: str, name: str, sync: Any) -> None:
        super().__init__(me, name)
        self.sync = sync
        self.pool = concurrent.futures.ThreadPoolExecutor(2)

    async def run_blocking(self, fn: Callable, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)


class QuietEngine:
    """The engine calls a session makes that the stand-ins below answer alike: nothing owed back, no
    member lists."""

    def owes_back(self, peer: str) -> bool:
        return False

    def membership_for(self, peer: str) -> list:
        return []


async def session_with(host: StandInHost, host_identity: Any, peer_identity: Any, peer_name: str,
                       versions: tuple[int, ...] = PROTOCOL_VERSIONS) -> tuple[Any, Any]:
    """Serve ``host`` through a real session on 127.0.0.1 and connect to it as ``peer_identity``, HELLO
    (with protocol ``versions``) sent; return (server, connection). The session tasks are kept in
    ``host.sessions``."""
    async def serve(incoming: Incoming) -> None:
        conn = await accept(incoming, host_identity)
        host.sessions.append(asyncio.current_task())  # type: ignore[arg-type]
        await PeerSession(host, conn, dialed=False).run()  # type: ignore[arg-type]

    server = await listen("127.0.0.1", 0, serve)
    conn = await connect("127.0.0.1", server.sockets[0].getsockname()[1], peer_identity, host_identity.device_id)
    conn.write(encode_frame({"flag": "HELLO", "device_id": peer_identity.device_id, "name": peer_name,
                             "versions": list(versions)}))
    await conn.drain()
    return server, conn
