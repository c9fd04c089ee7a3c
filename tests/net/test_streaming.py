"""Small files keep flowing while a large one streams: between two real daemons, a note written while a
256 MiB file is being received arrives before that file is complete, a note written behind a second
large file (waiting for the first one's stream) arrives while the first one still streams, and all end
up intact; the receiver keeps the chunk signature the sender's stream ended with (protocol 3)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ecosys_core.sync.chunking import digest_file

from .daemons import receiving, shared_pair, wait_until, write_random


def pending(d) -> int:
    """Changes ``d`` has queued for its peers, all tasks together."""
    return sum(sum(task["pending"].values()) for task in d.status()["tasks"])


def sha256(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def test_a_small_file_is_not_held_back_by_a_large_one_streaming(tmp_path: Path):
    with shared_pair(tmp_path, "docs") as (a, b):
        write_random(a.root / "large.bin", 256)
        wait_until(lambda: receiving(b, "large.bin"), 60, 0.01, "the large file to stream")
        (a.root / "note.txt").write_text("written while the large file streams\n")
        wait_until(lambda: (b.root / "note.txt").exists(), 60, 0.01, "the note")
        assert not (b.root / "large.bin").exists(), "the note waited for the large file"
        wait_until(lambda: (b.root / "large.bin").exists() and not receiving(b, "large.bin"), 120,
                   what="the large file")
        assert sha256(b.root / "large.bin") == sha256(a.root / "large.bin")
        assert (b.root / "note.txt").read_text() == "written while the large file streams\n"
        content = digest_file(b.root / "large.bin", with_signature=True)
        assert content.signature is not None
        kept = b.home / "objects" / "sig" / content.hash[:2] / content.hash
        wait_until(kept.is_file, 30, what="the received content's signature")
        assert kept.read_bytes() == content.signature.to_bytes()


def test_a_second_large_file_waits_its_turn_without_holding_back_the_small_ones(tmp_path: Path):
    """One large file streams at a time; a second one found meanwhile waits its turn, but a note written
    after it goes between the first one's DATA frames instead of waiting for that stream to end."""
    with shared_pair(tmp_path, "docs") as (a, b):
        write_random(a.root / "a-large.bin", 512)  # seconds of streaming: room for the note's own latency
        wait_until(lambda: receiving(b, "a-large.bin"), 60, 0.01, "the first large file to stream")
        write_random(tmp_path / "b-large.bin", 64)
        (tmp_path / "b-large.bin").rename(a.root / "b-large.bin")
        # found, hashed and queued behind the first one (a fixed wait here let the first stream end first)
        wait_until(lambda: pending(a) >= 2, 30, 0.01, "the second large file to be queued")
        (a.root / "z-note.txt").write_text("written behind two large files\n")
        wait_until(lambda: (b.root / "z-note.txt").exists(), 120, 0.01, "the note")
        assert receiving(b, "a-large.bin"), "the note waited for the first large file's stream to end"
        for name in ("a-large.bin", "b-large.bin"):
            wait_until(lambda n=name: (b.root / n).exists() and not receiving(b, n), 240, what=name)
            assert sha256(b.root / name) == sha256(a.root / name)
        assert (b.root / "z-note.txt").read_text() == "written behind two large files\n"
