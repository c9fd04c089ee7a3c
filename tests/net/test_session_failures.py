"""A session whose sender fails closes its connection (the peer reconnects to a fresh one) instead of
staying connected but mute. Real TLS on loopback and the real session; the daemon behind it is a small
stand-in here, because the failure must be provoked at one exact place (its engine call)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.net.protocol import PROTOCOL_VERSIONS, encode_frame
from ecosys_core.net.session import PeerSession
from ecosys_core.net.transport import Incoming, accept, connect, listen


class FailingNode:
    """A ``SessionHost`` whose blocking calls (the engine's, for pending work first) fail."""

    def __init__(self, me: str) -> None:
        self.me, self.name, self.port, self.idle_timeout = me, "server", 0, 90.0
        self.sync = None  # never reached: run_blocking fails before calling it
        self.closed: list[PeerSession] = []

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

    async def run_blocking(self, fn: Callable, *args: Any) -> Any:
        raise RuntimeError("database is locked")


def test_a_session_whose_sender_fails_closes_its_connection(tmp_path: Path):
    server_id = load_or_create_identity(tmp_path / "server")
    client_id = load_or_create_identity(tmp_path / "client")

    async def scenario() -> tuple[list[str], int]:
        node = FailingNode(server_id.device_id)
        sessions: list[asyncio.Task] = []

        async def serve(incoming: Incoming) -> None:
            conn = await accept(incoming, server_id)
            sessions.append(asyncio.current_task())  # type: ignore[arg-type]
            await PeerSession(node, conn, dialed=False).run()  # type: ignore[arg-type]

        server = await listen("127.0.0.1", 0, serve)
        conn = await connect("127.0.0.1", server.sockets[0].getsockname()[1], client_id, server_id.device_id)
        conn.write(encode_frame({"flag": "HELLO", "device_id": client_id.device_id, "name": "client",
                                        "versions": list(PROTOCOL_VERSIONS)}))
        await conn.drain()
        flags = []
        try:
            while True:  # the HELLO, then the end of the connection (or the test times out)
                flags.append((await asyncio.wait_for(conn.read_frame(), 10)).flag)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        await asyncio.wait_for(asyncio.gather(*sessions), 10)
        await conn.close()
        server.close()
        return flags, len(node.closed)

    flags, closed = asyncio.run(scenario())
    assert flags == ["HELLO"] and closed == 1
