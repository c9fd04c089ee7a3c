"""A scan that finds small and large new files indexes and queues the small ones first, tells the daemon
(so they can go out), and indexes the large ones once its helper threads have read them, outside the
engine lock meanwhile (issue 17). Real engines, real SQLite files, real files."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from ecosys_core.store.index import find_task, queue_many, queue_pending
from ecosys_core.sync import scanner

from .harness import SECURE_ID, make_devices, meet

LARGE = 2 << 20


@pytest.fixture()
def small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scanner, "PARALLEL_HASH_MIN", 1 << 20)  # 2 MiB files count as large here


def _held_large_reads(monkeypatch: pytest.MonkeyPatch, release: threading.Event,
                      complaint: str | None = None) -> list[str]:
    """Make each read of a LARGE file wait for ``release`` (failing with ``complaint``, when given, if it
    does not come within 10 s); returns the names of the large files read, in order, as they are read."""
    reads: list[str] = []
    real = scanner._read_digest

    def held_read(path: Path, size: int, patient: bool):
        if size >= LARGE:
            reads.append(path.name)
            released = release.wait(10)
            assert released or complaint is None, complaint
        return real(path, size, patient)

    monkeypatch.setattr(scanner, "_read_digest", held_read)
    return reads


def _many_small_files(device) -> list[str]:
    """Write 70 small files in four folders on ``device``; their paths."""
    names = [f"d{i % 4}/f{i:03d}.txt" for i in range(70)]
    for i, name in enumerate(names):
        device.write(name, os.urandom(100 + i))
    return names


def _pending_paths(device, peer: str) -> set[str]:
    return {item.path for item in device.engine.pending(peer)}


def test_small_files_are_queued_and_announced_before_the_large_ones_are_read(tmp_path: Path, small_threshold,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_devices(tmp_path, 2)
    for i in range(20):
        a.write(f"d{i % 3}/f{i}.txt", os.urandom(500 + i))
    a.write("big0.bin", os.urandom(LARGE))
    a.write("sub/big1.bin", os.urandom(LARGE))
    release = threading.Event()
    reads = _held_large_reads(monkeypatch, release, "the scan waited for the large files before queueing the small ones")
    seen: dict[str, set[str]] = {}

    def queued() -> None:  # in the scanning thread, with the engine lock released
        taken = threading.Thread(target=lambda: seen.update(pending=_pending_paths(a, b.device_id)))
        taken.start()
        taken.join(10)  # another thread gets the lock and the pending list: the lock is free
        release.set()

    a.engine.when_queued(queued)
    report = a.scan()
    assert seen["pending"] == {f"d{i % 3}/f{i}.txt" for i in range(20)}
    assert report.changed == 22 and report.files_seen == 22
    assert sorted(reads) == ["big0.bin", "big1.bin"]  # each large file read once, by a helper
    assert _pending_paths(a, b.device_id) == seen["pending"] | {"big0.bin", "sub/big1.bin"}
    meet(a, b)
    assert b.files() == a.files()


def test_a_large_file_changed_after_it_was_read_ahead_is_read_again(tmp_path: Path, small_threshold,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = make_devices(tmp_path, 2)
    a.write("small.txt", b"small")
    a.write("big.bin", os.urandom(LARGE))
    newer = os.urandom(LARGE + 5)

    def edit_before_the_second_pass() -> None:  # the user saves again while the scan is between its passes
        (a.root / "big.bin").write_bytes(newer)
        st = (a.root / "big.bin").stat()
        os.utime(a.root / "big.bin", ns=(st.st_atime_ns, st.st_mtime_ns - 3_000_000_000))  # settled at once

    a.engine.when_queued(edit_before_the_second_pass)
    a.scan()
    meet(a, b)
    assert (b.root / "big.bin").read_bytes() == newer
    assert a.engine.pending(b.device_id) == []  # all acknowledged


def test_a_scan_with_only_large_changes_or_one_thread_defers_nothing(tmp_path: Path, small_threshold,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    a, _ = make_devices(tmp_path, 2)
    a.write("big.bin", os.urandom(LARGE))
    calls: list[int] = []
    a.engine.when_queued(lambda: calls.append(1))
    assert a.scan().changed == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    a.write("small.txt", b"x")
    a.write("big2.bin", os.urandom(LARGE))
    assert a.scan().changed == 2
    assert calls == []
    assert not scanner._HASHED  # nothing read ahead is left behind


def test_queueing_in_bulk_keeps_an_events_oldest_base_and_takes_its_newest_version(tmp_path: Path) -> None:
    from ecosys_core.store.index import Entry

    (device,) = make_devices(tmp_path, 1)
    old = Entry("p1", {"x": 1}, "h1", 1, 1, 1, "x", False)
    with device.store.session() as session:
        task = find_task(session, SECURE_ID)
        queue_many(session, task.id, [(f"p{i}", old if i == 1 else None, {"x": 2}, ["d2", "d1"]) for i in range(5)])
        queue_many(session, task.id, [("p1", None, {"x": 3}, ["d3"]), ("p9", None, {"x": 1}, [])])
        queue_pending(session, task.id, "p2", old, {"x": 4}, ["d1"])
        raw = session.connection().connection.driver_connection
        rows = raw.execute("SELECT e.path, e.version, e.header, t.device_id FROM pending_events e "
                           "JOIN pending_targets t ON t.event_id = e.id ORDER BY e.id, t.device_id").fetchall()
    base = '{"base_hash": "h1", "base_version": {"x": 1}}'
    none = '{"base_hash": "", "base_version": {}}'
    assert rows == [("p0", '{"x": 2}', none, "d1"), ("p0", '{"x": 2}', none, "d2"),
                    ("p1", '{"x": 3}', base, "d1"), ("p1", '{"x": 3}', base, "d2"), ("p1", '{"x": 3}', base, "d3"),
                    ("p2", '{"x": 4}', none, "d1"), ("p2", '{"x": 4}', none, "d2"),
                    ("p3", '{"x": 2}', none, "d1"), ("p3", '{"x": 2}', none, "d2"),
                    ("p4", '{"x": 2}', none, "d1"), ("p4", '{"x": 2}', none, "d2")]  # p9: no target, no event


def test_a_large_file_replaced_by_one_of_the_same_size_and_mtime_is_read_again(tmp_path: Path, small_threshold
                                                                               ) -> None:
    # what cp -p or rsync -t do: other bytes, same size and mtime; only the inode and ctime tell
    a, b = make_devices(tmp_path, 2)
    a.write("small.txt", b"small")
    a.write("big.bin", os.urandom(LARGE))
    hour_ago = time.time_ns() - 3600 * 10**9  # long settled: the stamps alone would vouch for it
    os.utime(a.root / "big.bin", ns=(hour_ago, hour_ago))
    other = os.urandom(LARGE)

    def replaced_keeping_the_stamps() -> None:
        for _ in range(500):  # once the helper has read it ahead
            if os.fspath(a.root / "big.bin") in scanner._HASHED:
                break
            time.sleep(0.01)
        st = (a.root / "big.bin").stat()
        (a.root / "big.new").write_bytes(other)
        os.utime(a.root / "big.new", ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(a.root / "big.new", a.root / "big.bin")

    a.engine.when_queued(replaced_keeping_the_stamps)
    a.scan()
    meet(a, b)
    assert (b.root / "big.bin").read_bytes() == other


def test_a_scan_meeting_a_large_file_being_read_ahead_takes_that_read(tmp_path: Path, small_threshold,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The watcher's scan of files an initial scan is still reading waits for those reads instead of
    making its own: each large file is read once."""
    a, b = make_devices(tmp_path, 2)
    a.write("small.txt", b"small")
    for name in ("big0.bin", "big1.bin"):
        a.write(name, os.urandom(LARGE))
        st = (a.root / name).stat()
        os.utime(a.root / name, ns=(st.st_atime_ns, st.st_mtime_ns - 3_000_000_000))  # settled
    release = threading.Event()
    reads = _held_large_reads(monkeypatch, release)
    second: list = []

    def another_scan_meanwhile() -> None:  # the large files are being read by the first scan's helpers
        if second or release.is_set():
            return  # (the second scan's own call)
        other = threading.Thread(target=lambda: second.append(a.scan()))
        other.start()
        time.sleep(0.3)  # it waits for those reads
        assert other.is_alive()
        release.set()
        other.join(20)

    a.engine.when_queued(another_scan_meanwhile)
    a.scan()
    assert sorted(reads) == ["big0.bin", "big1.bin"]
    assert second and second[0].changed == 2
    assert _pending_paths(a, b.device_id) == {"small.txt", "big0.bin", "big1.bin"}
    meet(a, b)
    assert b.files() == a.files()


def test_a_scan_of_many_new_files_lets_the_first_go_out_before_it_reads_the_rest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ecosys_core.sync import local

    monkeypatch.setattr(local, "FIRST_RECORDED", 10)
    a, b = make_devices(tmp_path, 2)
    names = _many_small_files(a)
    seen: list[set[str]] = []
    a.engine.when_queued(lambda: seen.append(_pending_paths(a, b.device_id)))
    report = a.scan()
    # 10 first, then 40 more (four times as many): each step queued and announced before the next is read
    assert [len(s) for s in seen] == [10, 50]
    assert not scanner._HASHED  # every read made ahead was taken
    assert seen[0] <= seen[1] <= set(names)
    assert report.changed == 70 and report.files_seen == 70
    assert _pending_paths(a, b.device_id) == set(names)
    meet(a, b)
    assert b.files() == a.files()


def test_a_scan_of_moved_in_folders_reads_only_its_first_files_across_all_of_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watcher's scan gets a moved-in tree as one folder each: its first FIRST_RECORDED files are the
    first of all of them, not of each (fifty folders of forty files were all read under the lock)."""
    from ecosys_core.sync import local

    monkeypatch.setattr(local, "FIRST_RECORDED", 10)
    a, b = make_devices(tmp_path, 2)
    names = _many_small_files(a)
    seen: list[set[str]] = []
    a.engine.when_queued(lambda: seen.append(_pending_paths(a, b.device_id)))
    report = a.engine.scan(SECURE_ID, folders=[f"d{k}" for k in range(4)])
    assert [len(s) for s in seen] == [10, 50]
    assert report.changed == 70
    assert _pending_paths(a, b.device_id) == set(names)


def test_a_watcher_scan_waits_for_the_whole_scan_running_and_reads_nothing_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Folders moved into a task reach its watcher while a whole scan reads them: the watcher's scan
    (impatient) waits for that scan to end instead of reading the same files under the engine lock,
    then finds them indexed. Every file is read once."""
    from ecosys_core.sync import local

    monkeypatch.setattr(local, "FIRST_RECORDED", 10)
    a, b = make_devices(tmp_path, 2)
    names = _many_small_files(a)
    for name in names:
        st = (a.root / name).stat()
        os.utime(a.root / name, ns=(st.st_atime_ns, st.st_mtime_ns - 3_000_000_000))  # settled: not racy
    reads: list[str] = []
    real = scanner._read_digest
    monkeypatch.setattr(scanner, "_read_digest", lambda path, size, patient: (reads.append(path.name),
                                                                              real(path, size, patient))[1])
    watcher: list = []
    waited: list[bool] = []

    def whole_scan_queued() -> None:  # in the whole scan's thread, between its parts
        if not watcher:
            thread = threading.Thread(target=lambda: watcher.append(
                a.engine.scan(SECURE_ID, folders=[f"d{k}" for k in range(4)], patient=False)))
            watcher.append(thread)
            thread.start()
            time.sleep(0.3)
            waited.append(thread.is_alive())

    a.engine.when_queued(whole_scan_queued)
    assert a.scan().changed == 70
    watcher[0].join(20)
    assert waited == [True], "the watcher's scan did not wait for the whole scan"
    assert watcher[1].changed == 0
    assert sorted(reads) == sorted(name.rsplit("/", 1)[1] for name in names)  # each file read once
    assert _pending_paths(a, b.device_id) == set(names)
