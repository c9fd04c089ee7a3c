"""A file changed just now is hashed once: the scan that found it hashed it after it settled (more than
one timestamp step after its mtime), so sending it does not hash it again; a file hashed while it could
still change under the same mtime is hashed again, and an edit after the scan is always seen."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ecosys_core.sync.scanner import RACY_NS, settled_after

from .harness import make_devices


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
