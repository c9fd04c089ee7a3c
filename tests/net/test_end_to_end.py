"""Three real daemons on 127.0.0.1 (own homes and ports): linking, sharing, initial sync, live edits,
store and forward through a third device, conflicts, and a receiver killed mid-transfer."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from .daemons import (
    Daemon,
    link,
    receiving,
    share,
    shared_pair,
    tree,
    wait_until,
    write_random,
)


@pytest.fixture
def trio(tmp_path: Path):
    devices = [Daemon(tmp_path, n) for n in ("alpha", "beta", "gamma")]
    try:
        yield devices
    finally:
        for d in devices:
            d.stop()


def mixed_tree(root: Path) -> None:
    for i in range(40):
        (root / f"dir{i % 4}").mkdir(exist_ok=True)
        (root / f"dir{i % 4}" / f"note{i}.txt").write_text(f"note {i}\n" * (i + 1))
    (root / "empty.txt").write_bytes(b"")
    (root / "photo.bin").write_bytes(os.urandom(3 << 20))


def test_three_devices_link_share_sync_relay_and_conflict(trio, tmp_path: Path):
    a, b, c = trio
    mixed_tree(a.root)
    assert a.cli("task", "add", str(a.root), "--name", "docs").returncode == 0
    b.peers = [f"127.0.0.1:{c.port}"]  # b and c find each other without a's help later
    for d in trio:
        d.start()
    link(a, b)
    link(a, c)
    link(b, c)
    share(a, "docs", b, b.root)
    share(a, "docs", c, c.root)  # b and c learn of each other from a's member list: no share between them
    expected = tree(a.root)
    wait_until(lambda: tree(b.root) == expected and tree(c.root) == expected, 60, what="initial sync")

    # a live edit on a shows up on b within a second
    start = time.monotonic()
    (a.root / "dir0" / "note0.txt").write_text("edited on alpha\n")
    wait_until(lambda: (b.root / "dir0" / "note0.txt").read_text() == "edited on alpha\n", 5, 0.01, "live edit")
    latency = time.monotonic() - start
    assert latency < 1.0, f"edit took {latency:.2f}s"

    # store and forward: b is away, a edits and meets c, a leaves, b comes back and meets only c
    b.stop()
    (a.root / "relayed.txt").write_text("through gamma\n")
    wait_until(lambda: (c.root / "relayed.txt").exists(), 20, what="a → c")
    a.stop()
    b.start()
    wait_until(lambda: (b.root / "relayed.txt").exists() and tree(b.root) == tree(c.root), 30, what="c → b relay")
    assert (b.root / "relayed.txt").read_text() == "through gamma\n"

    # concurrent edits on two devices: one conflict copy, identical everywhere
    b.stop()
    (c.root / "dir1" / "note1.txt").write_text("gamma's version\n")
    (b.root / "dir1" / "note1.txt").write_text("beta's version, written offline\n")
    a.start()
    b.start()
    def converged():
        ta, tb, tc = tree(a.root), tree(b.root), tree(c.root)
        return ta == tb == tc and sum(".sync-conflict-" in p for p in ta) == 1
    wait_until(converged, 40, what="conflict resolution everywhere")
    contents = {p.read_text() for p in [a.root / "dir1" / "note1.txt", *a.root.glob("dir1/note1.sync-conflict-*")]}
    assert contents == {"gamma's version\n", "beta's version, written offline\n"}


def test_receiver_killed_mid_transfer_resumes_without_corruption(tmp_path: Path):
    with shared_pair(tmp_path, "big") as (a, b):
        write_random(a.root / "huge.bin", 400)
        wait_until(lambda: receiving(b), 30, 0.02, "the transfer to start")
        b.kill()
        partial = b.root / "huge.bin"
        assert not partial.exists() or partial.stat().st_size in (0, 400 << 20)
        b.start()
        expected = tree(a.root)
        wait_until(lambda: tree(b.root) == expected, 120, 0.2, "resumed transfer")
        assert not [p for p in b.root.iterdir() if p.name.startswith(".ecosys-tmp-")]


def test_a_file_made_while_the_first_scan_runs_is_seen_at_once(tmp_path: Path):
    """The daemon answers before its first scan ends; a file made in that window (after the scan passed
    its folder) is indexed within seconds, not at the periodic rescan five minutes later."""
    d = Daemon(tmp_path, "alpha")
    for i in range(2000):  # enough for the first scan to last well past the daemon's first answer
        folder = d.root / f"dir{i % 40}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{i}.txt").write_text(str(i))
    assert d.cli("task", "add", str(d.root), "--name", "docs").returncode == 0
    try:
        d.start()
        (d.root / "late.txt").write_text("made during the first scan\n")
        wait_until(lambda: d.status()["tasks"][0]["files"] == 2001, 15, what="late.txt indexed")
    finally:
        d.stop()
