"""The floor under ``bench/sync.py``: the same data set moved between two Python processes over the same
mutual TLS 1.3 asyncio streams, by the least code that keeps Ecosys's write guarantees (every file
written to a temp file, made durable, then renamed into place) and nothing else: no index, no hashing,
no protocol, no watcher, no conflict checks. Ecosys cannot be faster than this in Python on the same
machine; the script says how far below the TLS ceiling even this floor lies.

    python bench/sync_floor.py --json [--small 2000] [--big-mib 128] [--no-durable]

``--no-durable`` drops the syncs (rsync's default), to show what durability costs.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import parser, report, settle, write_random
from sync import cpu_seconds, tls_ceiling

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from ecosys_core.net.identity import load_or_create_identity  # noqa: E402
from ecosys_core.net.identity import cert_der  # noqa: E402
from ecosys_core.net.transport import _context  # noqa: E402
from ecosys_core.sync.fsio import _sync_dir_now, _syncfs  # noqa: E402  (libc's syncfs, where it reports errors)

_HEADER = struct.Struct("!HQ")  # path length, content length; then the path, then the content; 0, 0 ends
_BATCH = 256  # small files made durable together, as the daemon's receiver does
_BLOCK = 1 << 20


def _sync_folder(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        if _syncfs is None or _syncfs(fd) != 0:
            raise OSError("this floor needs syncfs (Linux 5.8+)")
    finally:
        os.close(fd)


class _Writer:
    """Receives files into temp files in ``staging`` and renames them into ``root`` batch by batch."""

    def __init__(self, root: str, staging: str, durable: bool) -> None:
        self.root, self.staging, self.durable = root, staging, durable
        self.pending: list[tuple[str, str]] = []
        self.serial = 0

    def temp(self) -> str:
        self.serial += 1
        return os.path.join(self.staging, f".tmp-{self.serial}")

    def write_small(self, rel: str, data: bytes) -> None:
        temp = self.temp()
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        self.pending.append((temp, rel))
        if len(self.pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        if self.durable:
            _sync_folder(self.staging)  # syncfs: every temp file of the batch at once
        folders = set()
        for temp, rel in self.pending:
            target = os.path.join(self.root, rel)
            folder = os.path.dirname(target)
            if folder not in folders:
                os.makedirs(folder, exist_ok=True)
                folders.add(folder)
            os.rename(temp, target)
        if self.durable:
            for folder in folders:
                _sync_dir_now(folder)
        self.pending.clear()


async def _receive(root: str, staging: str, durable: bool, home: str, peer_home: str) -> None:
    me, peer = load_or_create_identity(Path(home)), load_or_create_identity(Path(peer_home))
    finished = asyncio.get_running_loop().create_future()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        out = _Writer(root, staging, durable)
        while True:
            name_len, size = _HEADER.unpack(await reader.readexactly(_HEADER.size))
            if not name_len:  # the end (TLS streams cannot be half-closed)
                break
            rel = (await reader.readexactly(name_len)).decode()
            if size <= _BLOCK:
                out.write_small(rel, await reader.readexactly(size))
                continue
            temp = out.temp()
            with open(temp, "wb") as fh:
                left = size
                while left:
                    chunk = await reader.read(min(left, _BLOCK))
                    fh.write(chunk)
                    left -= len(chunk)
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            target = os.path.join(root, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.rename(temp, target)
        out.flush()
        writer.write(b"k")
        await writer.drain()
        writer.close()
        finished.set_result(None)

    server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=_context(me, cert_der(peer.cert_path), server=True))
    print(server.sockets[0].getsockname()[1], flush=True)
    await finished
    server.close()


async def _send(root: Path, port: int, home: Path, peer_home: Path) -> None:
    me, peer = load_or_create_identity(home), load_or_create_identity(peer_home)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=_context(me, cert_der(peer.cert_path), server=False))
    for folder, _, names in os.walk(root):
        for name in sorted(names):
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root).encode()
            with open(path, "rb") as fh:
                size = os.fstat(fh.fileno()).st_size
                head = _HEADER.pack(len(rel), size) + rel
                if size <= _BLOCK:  # one write per small file: one TLS record, not two
                    writer.write(head + fh.read())
                else:
                    writer.write(head)
                    while block := fh.read(_BLOCK):
                        writer.write(block)
                        await writer.drain()
            await writer.drain()
    writer.write(_HEADER.pack(0, 0))
    await reader.readexactly(1)
    writer.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("--receiver", "--sender"):
        role, *rest = sys.argv[1:]
        if role == "--receiver":
            root, staging, durable, home, peer_home = rest
            asyncio.run(_receive(root, staging, durable == "1", home, peer_home))
        else:
            root, port, home, peer_home = rest
            asyncio.run(_send(Path(root), int(port), Path(home), Path(peer_home)))
        return
    p = parser(__doc__)
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--big-mib", type=int, default=128)
    p.add_argument("--no-durable", action="store_true")
    p.add_argument("--no-settle", action="store_true", help="start at once (see settle() in _common.py)")
    args = p.parse_args()
    results: dict = {"durable": not args.no_durable}
    if not args.no_settle:
        settle()
    with tempfile.TemporaryDirectory(dir=os.environ.get("ECOSYS_BENCH_TMP")) as tmp:
        base = Path(tmp)
        results["tls_ceiling_mb_s"] = round(asyncio.run(tls_ceiling(base)), 1)
        source, target, staging = base / "a", base / "b", base / "staging"
        for folder in (source, target, staging):
            folder.mkdir()
        for i in range(args.small):
            (source / f"d{i % 50}").mkdir(exist_ok=True)
            (source / f"d{i % 50}" / f"f{i}.bin").write_bytes(os.urandom(1024 + (i * 7919) % (15 * 1024)))
        for i in range(2):
            write_random(source / f"big{i}.bin", args.big_mib << 20)
        total = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
        results["dataset_mib"] = round(total / 2**20, 1)
        for home in ("ha", "hb"):
            load_or_create_identity(base / home)
        os.sync()  # the data set at rest: see bench/sync.py
        me = [sys.executable, __file__]
        receiver = subprocess.Popen(me + ["--receiver", str(target), str(staging), "0" if args.no_durable else "1",
                                          str(base / "hb"), str(base / "ha")], stdout=subprocess.PIPE, text=True)
        try:
            port = receiver.stdout.readline().strip()
            start = time.perf_counter()
            sender = subprocess.Popen(me + ["--sender", str(source), port, str(base / "ha"), str(base / "hb")])
            cpu_r = cpu_s = 0.0
            while sender.poll() is None:  # sample CPU while both live: a reaped process has no /proc entry
                cpu_r, cpu_s = cpu_seconds(receiver.pid), cpu_seconds(sender.pid)
                time.sleep(0.01)
            elapsed = time.perf_counter() - start
            assert sender.returncode == 0 and receiver.wait(60) == 0
        finally:
            if receiver.poll() is None:
                receiver.kill()
        results["floor_s"] = round(elapsed, 2)
        results["floor_mb_s"] = round(total / elapsed / 1e6, 1)
        results["cpu_s_sender"], results["cpu_s_receiver"] = round(cpu_s, 2), round(cpu_r, 2)
        results["ratio_to_tls_ceiling"] = round(results["floor_mb_s"] / results["tls_ceiling_mb_s"], 2)
    report(results, args.json)


if __name__ == "__main__":
    main()
