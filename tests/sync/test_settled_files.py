"""A file changed just now is hashed once: the scan that found it hashed it after it settled (more than
one timestamp step after its mtime), so sending it does not hash it again; a file hashed while it could
still change under the same mtime is hashed again, and an edit after the scan is always seen."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ecosys_core.sync.scanner import RACY_NS, settled_after

from .harness import SECURE_ID, make_devices, meet


def scans_of(device) -> list:  # a spy on the real index's scans (nothing replaced)
    calls: list = []
    original = device.engine.local.scan

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    device.engine.local.scan = spy
    return calls


def test_a_settled_file_is_not_hashed_again_when_sent(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("doc.txt", b"first version")
    time.sleep(0.1)  # what the watcher waits before scanning
    a.scan()
    calls = scans_of(a)
    messages = a.engine.outgoing(b.device_id)
    assert [m.path for m in messages] == ["doc.txt"] and calls == []
    a.write("doc.txt", b"second, longer version")  # edited after the scan: seen when sent
    messages = a.engine.outgoing(b.device_id)
    assert calls and messages[0].size == len(b"second, longer version")
    for d in (a, b):
        d.close()


def test_a_file_hashed_before_it_settled_is_hashed_again(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    path = a.root / "doc.txt"
    a.write("doc.txt", b"first version")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # its mtime still ahead of any read
    a.scan()
    calls = scans_of(a)
    a.engine.outgoing(b.device_id)
    assert calls, "an unsettled file must be hashed again before it is sent"
    for d in (a, b):
        d.close()


def test_settled_after_uses_the_file_systems_step():
    now = time.time_ns()
    fine = now - 100_000_001  # sub-second mtime: one jiffy at most between two writes
    assert settled_after(fine, now) and not settled_after(now - 1_000_001, now)
    coarse = (now // 10**9 - 1) * 10**9  # whole seconds (FAT's 2 s steps): RACY_NS
    assert not settled_after(coarse, coarse + RACY_NS) and settled_after(coarse, coarse + RACY_NS + 1)


def test_a_received_file_is_not_hashed_again_by_the_scan_its_write_brings(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("doc.txt", b"from a")
    time.sleep(0.1)  # the origin's mtime lies more than a timestamp step before the receiver's rename
    a.scan()
    meet(a, b)
    assert b.files() == {"doc.txt": b"from a"}
    report = b.engine.scan(SECURE_ID, ["doc.txt"], patient=False)  # what b's watcher asks for
    assert report.bytes_hashed == 0 and report.changed == 0
    b.write("doc.txt", b"edited on b")  # a later edit moves the mtime: seen
    report = b.engine.scan(SECURE_ID, ["doc.txt"], patient=False)
    assert report.changed == 1
    for d in (a, b):
        d.close()


class GrowsWhileRead:
    """A BLAKE3 hasher standing in for the real one (which it wraps) that appends to ``path`` while the
    first block is hashed: a writer at work while the scan reads, made deterministic."""

    def __init__(self, real, path: Path, times: int) -> None:
        self.real, self.path, self.times = real, path, times

    def __call__(self):
        real, outer = self.real(), self

        class Hasher:
            def update(self, block):
                if outer.times > 0:
                    outer.times -= 1
                    with open(outer.path, "ab") as fh:
                        fh.write(b" and more")
                real.update(block)

            def hexdigest(self):
                return real.hexdigest()

        return Hasher()


def test_a_file_written_while_it_is_read_is_never_taken_half_written(tmp_path: Path, monkeypatch):
    from ecosys_core.sync import chunking

    real = chunking.blake3.blake3
    a, b = make_devices(tmp_path, 2)
    path = a.root / "log.txt"
    a.write("log.txt", b"start")
    digest = chunking.digest_file(path, with_signature=False)
    assert digest.steady and digest.mtime_ns == path.stat().st_mtime_ns
    monkeypatch.setattr(chunking.blake3, "blake3", GrowsWhileRead(real, path, 1))
    assert not chunking.digest_file(path, with_signature=False).steady

    # A watcher's scan leaves it: the write ends with an event of its own
    monkeypatch.setattr(chunking.blake3, "blake3", GrowsWhileRead(real, path, 1))
    report = a.engine.scan(SECURE_ID, ["log.txt"], patient=False)
    assert report.changed == 0 and a.engine.outgoing(b.device_id) == []
    # Any other scan reads it again until it holds still, and takes what it then holds
    monkeypatch.setattr(chunking.blake3, "blake3", GrowsWhileRead(real, path, 2))
    report = a.engine.scan(SECURE_ID, ["log.txt"])
    assert report.changed == 1
    meet(a, b)
    assert b.files() == {"log.txt": path.read_bytes()} and path.read_bytes().endswith(b"and more and more and more")
    for d in (a, b):
        d.close()
