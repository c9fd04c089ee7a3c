"""Small files keep flowing while a large one streams: between two real daemons, a note written while a
256 MiB file is being received arrives before that file is complete, and both end up intact."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .daemons import Daemon, link, share, wait_until


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def receiving(d: Daemon, path: str) -> bool:
    return any(t["direction"] == "receive" and t["path"] == path and t["done"] > 0
               for dev in d.status()["devices"] for t in dev["transfers"])


def test_a_small_file_is_not_held_back_by_a_large_one_streaming(tmp_path: Path):
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    try:
        (a.root / "start.txt").write_text("linked\n")
        assert a.cli("task", "add", str(a.root), "--name", "docs").returncode == 0
        b.peers = [f"127.0.0.1:{a.port}"]
        a.start()
        b.start()
        link(a, b)
        share(a, "docs", b, b.root)
        wait_until(lambda: (b.root / "start.txt").exists(), 30, what="the initial sync")

        with open(a.root / "large.bin", "wb") as fh:
            for _ in range(256):
                fh.write(os.urandom(1 << 20))
        wait_until(lambda: receiving(b, "large.bin"), 60, 0.01, "the large file to stream")
        (a.root / "note.txt").write_text("written while the large file streams\n")
        wait_until(lambda: (b.root / "note.txt").exists(), 60, 0.01, "the note")
        assert not (b.root / "large.bin").exists(), "the note waited for the large file"
        wait_until(lambda: (b.root / "large.bin").exists() and not receiving(b, "large.bin"), 120,
                   what="the large file")
        assert sha256(b.root / "large.bin") == sha256(a.root / "large.bin")
        assert (b.root / "note.txt").read_text() == "written while the large file streams\n"
    finally:
        a.stop()
        b.stop()
