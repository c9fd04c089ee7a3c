"""The frame protocol under real TLS on 127.0.0.1: frames of every size arrive whole and in order, a
reader that falls behind pauses the socket instead of buffering without bound, and malformed input ends
the stream with a ProtocolError after the good frames before it. Each runs over both TLS paths: TLS on
the socket itself (``tls_socket``, selector loops) and asyncio's own (the proactor loop's, on Windows)."""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import struct
from pathlib import Path
from typing import Awaitable, Callable

import pytest

from ecosys_core.net import transport, wire
from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.net.protocol import MAX_PAYLOAD, ProtocolError, encode_frame, frame_head, read_preamble
from ecosys_core.net.transport import Connection, Incoming, accept, connect, listen


@pytest.fixture(params=["tls on the socket", "asyncio tls"])
def tls_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "asyncio tls":
        monkeypatch.setattr(transport, "direct_tls_supported", lambda loop: False)
    return request.param


def run_pair(tmp_path: Path, server_side: Callable[[Connection], Awaitable[object]],
             client_side: Callable[[Connection], Awaitable[None]]) -> object:
    """Run ``server_side`` on an accepted connection and ``client_side`` on the dialled one; return
    what the server side returned."""
    server_id = load_or_create_identity(tmp_path / "server")
    client_id = load_or_create_identity(tmp_path / "client")

    async def scenario() -> object:
        result: asyncio.Future[object] = asyncio.get_running_loop().create_future()

        async def serve(incoming: Incoming) -> None:
            conn = await accept(incoming, server_id)
            try:
                result.set_result(await server_side(conn))
            except BaseException as exc:  # handed to the test
                result.set_exception(exc)
            await conn.close()

        server = await listen("127.0.0.1", 0, serve)
        conn = await connect("127.0.0.1", server.sockets[0].getsockname()[1], client_id, server_id.device_id)
        try:
            await client_side(conn)
            return await asyncio.wait_for(result, 20)
        finally:
            await conn.close()
            server.close()

    return asyncio.run(scenario())


ME = "ab" * 32


def test_frames_of_every_size_arrive_whole_and_in_order(tmp_path: Path, tls_path: str):
    sizes = [0, 1, 100, wire.DIRECT - 1, wire.DIRECT, wire.DIRECT + 1, wire.SCRATCH - 10, wire.SCRATCH + 10,
             1 << 20, MAX_PAYLOAD] + [7, 5000] * 50
    payloads = [os.urandom(n) for n in sizes]

    async def receive(conn: Connection) -> list[bytes]:
        got = []
        for _ in payloads:
            frame = await conn.read_frame()
            blocks = frame.blocks()
            # a large payload comes as the buffers it was received in, joined only when asked
            assert frame.size == sum(map(len, blocks)) and all(blocks) and len(blocks) <= 1 + frame.size // wire.PIECE
            assert b"".join(blocks) == frame.payload and frame.blocks() == ((frame.payload,) if frame.size else ())
            got.append(frame.payload)
        return got

    async def send(conn: Connection) -> None:
        data = b"".join(encode_frame({"flag": "DATA", "device_id": ME, "path": f"p{i}"}, p)
                        for i, p in enumerate(payloads))
        view = memoryview(data)
        cut = 0
        for step in (1, 3, 6, 7, 1000, 70_000, 300_000, 1 << 20):  # frames split at odd places
            conn.write(bytes(view[cut:cut + step]))
            cut += step
            await conn.drain()
            await asyncio.sleep(0.01)
        conn.write(bytes(view[cut:]))
        await conn.drain()

    got = run_pair(tmp_path, receive, send)
    assert got == payloads


def test_a_frame_written_as_its_head_then_its_payload_arrives_as_one(tmp_path: Path, tls_path: str):
    """The streamer writes a large payload after its frame's head, where it lies (bytes or the bytearray
    a literal was read into), not copied behind it: the peer reads the frames encode_frame makes."""
    payloads = [os.urandom(1 << 20), bytearray(os.urandom(300_000)), os.urandom(5), bytearray(b"L" * (MAX_PAYLOAD))]
    header = {"flag": "DATA", "device_id": ME}
    for payload in payloads:
        assert frame_head(header, len(payload)) + payload == encode_frame(header, bytes(payload))
    with pytest.raises(ProtocolError):
        frame_head(header, MAX_PAYLOAD + 1)

    async def receive(conn: Connection) -> list[bytes]:
        return [(await conn.read_frame()).payload for _ in payloads]

    async def send(conn: Connection) -> None:
        for payload in payloads:
            conn.writelines([frame_head(header, len(payload)), payload])
            await conn.drain()

    assert run_pair(tmp_path, receive, send) == [bytes(p) for p in payloads]


def test_a_reader_that_falls_behind_pauses_the_socket(tmp_path: Path, tls_path: str):
    frame = encode_frame({"flag": "DATA", "device_id": ME}, os.urandom(1 << 20))
    count = 48  # 48 MiB sent; at most QUEUE_HIGH plus what the kernel and TLS buffer may wait unread

    async def receive(conn: Connection) -> tuple[int, int]:
        await asyncio.sleep(1.0)  # the sender fills every buffer meanwhile
        waiting = conn._protocol._queued
        for _ in range(count):
            await conn.read_frame()
        return waiting, count

    async def send(conn: Connection) -> None:
        for _ in range(count):
            conn.write(frame)
            await conn.drain()

    waiting, received = run_pair(tmp_path, receive, send)
    assert received == count
    assert waiting <= wire.QUEUE_HIGH + (2 << 20)


def raw_head(header: dict, payload: bytes = b"", extra: int = 0) -> bytes:
    """A frame head announcing ``extra`` more payload bytes than ``payload`` holds."""
    raw = json.dumps(header).encode()
    return struct.pack(">IH", 2 + len(raw) + len(payload) + extra, len(raw)) + raw + payload


@pytest.mark.parametrize("bad", [
    struct.pack(">IH", 1, 0),  # shorter than its own header length field
    struct.pack(">IH", 1 << 31, 2),  # longer than any frame may be
    struct.pack(">IH", 10, 50) + b"x" * 8,  # header longer than the frame
    struct.pack(">IH", 4, 2) + b"{]",  # header not JSON
    raw_head({"flag": "NOPE", "device_id": ME}),  # unknown flag
    raw_head({"flag": "DATA", "device_id": ME}, extra=MAX_PAYLOAD + 1),  # payload too large
])
def test_a_malformed_frame_ends_the_stream_after_the_good_ones(tmp_path: Path, bad: bytes, tls_path: str):
    good = encode_frame({"flag": "PING", "device_id": ME})

    async def receive(conn: Connection) -> tuple[str, str]:
        first = (await conn.read_frame()).flag
        with pytest.raises(ProtocolError) as caught:
            await conn.read_frame()
        with pytest.raises(ProtocolError):  # and it stays ended
            await conn.read_frame()
        return first, str(caught.value)

    async def send(conn: Connection) -> None:
        conn.write(good + bad + good)
        await conn.drain()

    first, error = run_pair(tmp_path, receive, send)
    assert first == "PING" and error


def test_the_end_of_the_stream_is_reported_after_the_last_frame(tmp_path: Path, tls_path: str):
    async def receive(conn: Connection) -> list[str]:
        flags = [(await conn.read_frame()).flag]
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await conn.read_frame()
        return flags

    async def send(conn: Connection) -> None:
        conn.write(encode_frame({"flag": "PING", "device_id": ME}))
        await conn.drain()
        await conn.close()

    assert run_pair(tmp_path, receive, send) == ["PING"]


def test_what_was_written_before_close_all_arrives(tmp_path: Path, tls_path: str):
    """Closing at once after writing (no drain) still delivers every frame, then the end."""
    frames = [encode_frame({"flag": "DATA", "device_id": ME, "path": f"p{i}"}, os.urandom(1 << 20))
              for i in range(24)]

    async def receive(conn: Connection) -> list[str]:
        paths = [(await conn.read_frame()).header["path"] for _ in frames]
        with pytest.raises((asyncio.IncompleteReadError, ConnectionError)):
            await conn.read_frame()
        return paths

    async def send(conn: Connection) -> None:
        conn.writelines(frames)
        await conn.close()

    assert run_pair(tmp_path, receive, send) == [f"p{i}" for i in range(24)]


def test_small_frames_written_together_arrive_each_whole(tmp_path: Path, tls_path: str):
    """A group of small frames (joined into few TLS records on the way) arrives as the same frames."""
    frames = [encode_frame({"flag": "DATA", "device_id": ME, "path": f"p{i}"}, os.urandom(i % 9000))
              for i in range(3000)]

    async def receive(conn: Connection) -> list[tuple[str, int]]:
        return [((f := await conn.read_frame()).header["path"], len(f.payload)) for _ in frames]

    async def send(conn: Connection) -> None:
        conn.writelines(frames)
        await conn.drain()

    assert run_pair(tmp_path, receive, send) == [(f"p{i}", i % 9000) for i in range(3000)]


def _refused_handshake(tmp_path: Path, client: Callable[[int, bytes], Awaitable[None]]) -> BaseException:
    """What :func:`accept` raised for a raw client doing ``client(port, its_preamble)``."""
    from ecosys_core.net.identity import cert_der
    from ecosys_core.net.protocol import preamble

    server_id = load_or_create_identity(tmp_path / "server")
    client_id = load_or_create_identity(tmp_path / "client")

    async def scenario() -> BaseException:
        failed: asyncio.Future[BaseException] = asyncio.get_running_loop().create_future()

        async def serve(incoming: Incoming) -> None:
            try:
                conn = await accept(incoming, server_id)
            except Exception as exc:  # what the daemon logs and drops
                incoming.abort()
                failed.set_result(exc)
                return
            await conn.close()

        server = await listen("127.0.0.1", 0, serve)
        try:
            await client(server.sockets[0].getsockname()[1], preamble(cert_der(client_id.cert_path)))
            return await asyncio.wait_for(failed, 15)
        finally:
            server.close()

    return asyncio.run(scenario())


def test_bytes_sent_before_the_answer_to_the_preamble_are_refused(tmp_path: Path, tls_path: str):
    async def client(port: int, ours: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(ours + b"\x16\x03\x01 not yet")  # TLS bytes before the server's preamble came
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.close()

    error = _refused_handshake(tmp_path, client)
    assert isinstance(error, ProtocolError) and "before TLS" in str(error)


@pytest.mark.parametrize("instead", [b"\x16\x03\x01\x00",  # the start of a ClientHello, then the end
                                     b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256))])  # not TLS at all
def test_a_peer_failing_the_handshake_ends_only_that_connection(tmp_path: Path, tls_path: str, instead: bytes):
    async def client(port: int, ours: bytes) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(ours)
        await writer.drain()
        await read_preamble(reader)  # the server's
        writer.write(instead)
        await writer.drain()
        await asyncio.sleep(0.2)
        writer.close()

    error = _refused_handshake(tmp_path, client)
    assert isinstance(error, (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError))


def test_every_flag_in_the_code_is_documented_in_the_protocol():
    from pathlib import Path

    from ecosys_core.net.protocol import FIELDS, FLAGS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()
    flags_table = doc.split("### Flags", 1)[1].split("\n## ", 1)[0]
    assert sorted(flag for flag in FLAGS if f"| `{flag}` |" not in flags_table) == []
    assert sorted(field for field in FIELDS if field not in doc.split("## 4. Frames", 1)[1].split("### Limits")[0]) == []
