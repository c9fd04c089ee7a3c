"""A whole large content streams with its chunk signature after it (protocol 3), so the receiver need not
cut it again; a peer that only speaks protocol 2 gets the same content without it. Real TLS on loopback
and the real session; the engine behind it is a stand-in owing one streamed content (the signature's
use on a real receiver is tested in tests/sync/test_delta_signatures.py and test_streaming.py)."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.sync.delta import apply_delta, encode_full
from ecosys_core.sync.messages import Modification, SignatureTrailer

from .stand_in import QuietEngine, ThreadedHost, session_with

CONTENT = os.urandom(3 << 20)
SIGNATURE = SignatureTrailer(b"ECS2" + os.urandom(500))


class Item:
    secure_id, path, base_hash, version, cursor = "task", "big.bin", "", {"a": 1}, (0, 1)


class OwingOneStream(QuietEngine):
    """Owes one large content, streamed whole and signed, until it is answered."""

    def __init__(self) -> None:
        self.owed = True

    def pending(self, peer: str, after: tuple[int, int] = (0, 0), limit: int | None = None) -> list[Item]:
        return [Item()] if self.owed and after == (0, 0) else []

    def modifications(self, peer: str, items: Sequence[Item]) -> list[Modification]:
        def stream() -> Iterator[bytes]:
            yield from encode_full(io.BytesIO(CONTENT))
            yield SIGNATURE

        return [Modification("task", "big.bin", {"a": 1}, "0" * 64, len(CONTENT), 0, "a", False, "", stream(),
                             False, signed=True) for _ in items]

    def receive_many(self, peer: str, messages: Sequence[Any]) -> list[list]:
        self.owed = False
        return [[] for _ in messages]



@pytest.mark.parametrize("versions", [(2, 3), (2,)], ids=["protocol 3", "protocol 2 only"])
def test_a_streamed_whole_content_ends_with_its_signature_only_for_a_peer_that_speaks_protocol_3(
        tmp_path: Path, versions: tuple[int, ...]) -> None:
    sender_id = load_or_create_identity(tmp_path / "sender")
    reader_id = load_or_create_identity(tmp_path / "reader")
    node = ThreadedHost(sender_id.device_id, "sender", OwingOneStream())

    async def scenario() -> tuple[dict, list[bytes], bytes]:
        server, conn = await session_with(node, sender_id, reader_id, "reader", versions)
        try:
            while (frame := await asyncio.wait_for(conn.read_frame(), 10)).flag != "MODIFICATION":
                pass
            header, data = frame.header, []
            while not (frame := await asyncio.wait_for(conn.read_frame(), 10)).header.get("end"):
                assert frame.flag == "DATA"
                data.append(frame.payload)
            return header, data, frame.payload
        finally:
            await conn.close()
            server.close()

    header, data, last = asyncio.run(scenario())
    node.pool.shutdown()
    out = io.BytesIO()
    apply_delta(data, None, out, expected_size=len(CONTENT))
    assert out.getvalue() == CONTENT  # the signature is never taken for delta bytes
    if 3 in versions:
        assert header["signed"] is True and last == SIGNATURE.data
    else:
        assert "signed" not in header and last == b""


class Receiving(QuietEngine):
    """Takes streamed contents as the real engine's prebuild does (``apply_delta``), noting each
    content and the signature trailer it ended with."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, bytes | None]] = []

    def prebuild(self, peer: str, m: Modification) -> None:
        out, trailers = io.BytesIO(), []
        apply_delta(m.delta, None, out, expected_size=m.size, trailer=trailers.append)
        self.got.append((out.getvalue(), trailers[0] if trailers else None))

    def discard_prebuilt(self, key: Any) -> None:
        pass

    def receive_many(self, peer: str, messages: Sequence[Any]) -> list[list]:
        return [[] for _ in messages]

    def pending(self, peer: str, after: tuple[int, int] = (0, 0), limit: int | None = None) -> list:
        return []



@pytest.mark.parametrize("signed", [True, False])
def test_the_receiver_takes_the_last_data_frame_of_a_signed_stream_as_its_signature(tmp_path: Path,
                                                                                    signed: bool) -> None:
    from ecosys_core.net.codec import message_header
    from ecosys_core.net.protocol import encode_frame

    receiver_id = load_or_create_identity(tmp_path / "receiver")
    sender_id = load_or_create_identity(tmp_path / "sender")
    node = ThreadedHost(receiver_id.device_id, "receiver", Receiving())
    delta = b"".join(encode_full(io.BytesIO(CONTENT)))
    # unsigned, a last frame's payload is delta bytes like any other (protocol 2)
    last = SIGNATURE.data if signed else delta[-1000:]
    body = delta if signed else delta[:-1000]

    async def scenario() -> None:
        server, conn = await session_with(node, receiver_id, sender_id, "sender")
        try:
            m = Modification("task", "big.bin", {"a": 1}, "0" * 64, len(CONTENT), 0, "a", False, "",
                             iter([delta]), False, signed=signed)
            header, _ = message_header(m, sender_id.device_id)
            frames = [encode_frame(header)]
            frames += [encode_frame({"flag": "DATA", "device_id": sender_id.device_id}, body[i:i + (1 << 20)])
                       for i in range(0, len(body), 1 << 20)]
            frames.append(encode_frame({"flag": "DATA", "device_id": sender_id.device_id, "end": True}, last))
            conn.writelines(frames)
            await conn.drain()
            for _ in range(500):
                if node.sync.got:
                    break
                await asyncio.sleep(0.01)
        finally:
            await conn.close()
            server.close()

    asyncio.run(scenario())
    node.pool.shutdown()
    assert node.sync.got == [(CONTENT, SIGNATURE if signed else None)]
