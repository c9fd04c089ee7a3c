"""Small files keep flowing while a large one streams: between two real daemons, a note written while a
256 MiB file is being received arrives before that file is complete, and both end up intact."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .daemons import receiving, shared_pair, wait_until, write_random


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
