"""A sender never has more than its window of small changes unanswered: the receiver's reader does not
wait on its engine, so without the window a fast sender filled the receiver's memory with a whole first
sync. Real TLS on loopback and the real session; the engine behind it is a stand-in that owes 3,000
small files (a real one would need them on disk and indexed, and the window is what is measured)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ecosys_core.net import session as session_module
from ecosys_core.net.codec import message_header
from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.net.protocol import encode_frame
from ecosys_core.sync.messages import Modification, ModificationDone

from .stand_in import QuietEngine, ThreadedHost, session_with

FILES, SIZE = 3000, 8192


class Item:
    def __init__(self, number: int) -> None:
        self.secure_id, self.path, self.base_hash, self.version = "task", f"f{number}.txt", "", {"a": 1}
        self.cursor = (0, number + 1)


class OwingEngine(QuietEngine):
    """Owes FILES small files to any peer until each is answered."""

    def __init__(self) -> None:
        self.owed = {f"f{i}.txt" for i in range(FILES)}

    def pending(self, peer: str, after: tuple[int, int] = (0, 0), limit: int | None = None) -> list[Item]:
        owed = [Item(i) for i in range(after[1], FILES) if f"f{i}.txt" in self.owed]
        return owed[:limit] if limit is not None else owed

    def modifications(self, peer: str, items: Sequence[Item]) -> list[Modification]:
        return [Modification("task", i.path, {"a": 1}, "0" * 64, SIZE, 0, "a", False, "", [bytes(SIZE)], False)
                for i in items]

    def receive_many(self, peer: str, messages: Sequence[Any]) -> list[list]:
        for m in messages:
            self.owed.discard(m.path)
        return [[] for _ in messages]



def test_unanswered_changes_stay_within_the_window_and_answers_open_it(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(session_module, "WINDOW_MESSAGES", 500)
    monkeypatch.setattr(session_module, "WINDOW_BYTES", 1 << 30)
    sender_id = load_or_create_identity(tmp_path / "sender")
    reader_id = load_or_create_identity(tmp_path / "reader")
    node = ThreadedHost(sender_id.device_id, "sender", OwingEngine())

    async def scenario() -> tuple[int, int]:
        server, conn = await session_with(node, sender_id, reader_id, "reader")

        async def modifications(until_quiet: float) -> list[str]:
            paths = []
            try:
                while True:
                    frame = await asyncio.wait_for(conn.read_frame(), until_quiet)
                    if frame.flag == "MODIFICATION":
                        paths.append(frame.header["path"])
            except TimeoutError:
                return paths

        first = await modifications(1.5)  # nothing answered: the sender stops at its window
        for path in first:
            conn.write(encode_frame(*message_header(ModificationDone("task", path, {"a": 1}), reader_id.device_id)))
        await conn.drain()
        second = await modifications(1.5)
        await conn.close()
        server.close()
        return len(first), len(second)

    first, second = asyncio.run(scenario())
    node.pool.shutdown()
    assert first <= 500 + session_module.SEND_GROUP, first  # a group is prepared before it is counted
    assert first >= 500 - session_module.SEND_GROUP, first
    assert second > 0  # answers opened the window again
