"""A session whose sender fails closes its connection (the peer reconnects to a fresh one) instead of
staying connected but mute. Real TLS on loopback and the real session; the daemon behind it is a small
stand-in here, because the failure must be provoked at one exact place (its engine call)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ecosys_core.net.identity import load_or_create_identity

from .stand_in import StandInHost, session_with


class FailingNode(StandInHost):
    """A ``SessionHost`` whose blocking calls (the engine's, for pending work first) fail."""

    def __init__(self, me: str) -> None:
        super().__init__(me, "server")
        self.sync = None  # never reached: run_blocking fails before calling it

    async def run_blocking(self, fn: Callable, *args: Any) -> Any:
        raise RuntimeError("database is locked")


def test_a_session_whose_sender_fails_closes_its_connection(tmp_path: Path):
    server_id = load_or_create_identity(tmp_path / "server")
    client_id = load_or_create_identity(tmp_path / "client")

    async def scenario() -> tuple[list[str], int]:
        node = FailingNode(server_id.device_id)
        server, conn = await session_with(node, server_id, client_id, "client")
        flags = []
        try:
            while True:  # the HELLO, then the end of the connection (or the test times out)
                flags.append((await asyncio.wait_for(conn.read_frame(), 10)).flag)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        await asyncio.wait_for(asyncio.gather(*node.sessions), 10)
        await conn.close()
        server.close()
        return flags, len(node.closed)

    flags, closed = asyncio.run(scenario())
    assert flags == ["HELLO"] and closed == 1
