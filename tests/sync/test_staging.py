"""Received small files are written ahead in ``ECOSYS_HOME/staging`` and only moved into the task
folder: the folder's watcher sees one event per file, never a half-written temp file, and what a crash
leaves in staging is cleared."""

from __future__ import annotations

import errno
import os
import threading
import time
from pathlib import Path

import pytest
from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ecosys_core.sync import fsio
from ecosys_core.sync.fsio import TEMP_PREFIX, clear_staging

from .harness import as_received, make_devices


class Recorder(FileSystemEventHandler):
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        with self.lock:
            self.paths += [p for p in (event.src_path, getattr(event, "dest_path", "")) if p]


def test_a_batch_moves_finished_files_in_and_leaves_no_temp_file_in_the_folder(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    for i in range(40):
        a.write(f"d{i % 4}/f{i}.txt", os.urandom(100 + i))
    a.scan()
    messages = as_received(a.engine.outgoing(b.device_id), a.device_id)
    recorder, observer = Recorder(), Observer()
    observer.schedule(recorder, str(b.root), recursive=True)  # a real inotify watch, as the daemon has
    observer.start()
    try:
        results = b.engine.receive_many(a.device_id, messages)
        time.sleep(0.5)  # let the last events arrive
    finally:
        observer.stop()
        observer.join()
    assert all(isinstance(r, list) for r in results)
    assert b.files() == a.files()
    assert recorder.paths and not [p for p in recorder.paths if TEMP_PREFIX in p]
    assert list(b.home.staging.iterdir()) == []


def test_a_staged_file_on_another_mount_is_copied_beside_its_target(tmp_path: Path, monkeypatch):
    """Same device, other mount (a bind mount): the rename fails with EXDEV. Making a bind mount needs
    privileges the tests do not have, so that one error is simulated; the copy that follows is real."""
    a, b = make_devices(tmp_path, 2)
    a.write("doc.txt", b"moved in the slow way")
    a.scan()
    real_replace = os.replace

    def replace(src, dst):  # type: ignore[no-untyped-def]
        if Path(src).parent == b.home.staging:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(src, dst)

    monkeypatch.setattr(fsio.os, "replace", replace)
    results = b.engine.receive_many(a.device_id, as_received(a.engine.outgoing(b.device_id), a.device_id))
    assert all(isinstance(r, list) for r in results)
    assert b.files() == {"doc.txt": b"moved in the slow way"}
    assert list(b.home.staging.iterdir()) == []
    assert not [p for p in b.root.rglob("*") if fsio.is_temp_name(p.name)]


def test_what_a_crash_left_in_staging_is_cleared(tmp_path: Path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / f"{TEMP_PREFIX}left").write_bytes(b"half")
    (staging / "not-ours").write_bytes(b"kept")
    clear_staging(staging)
    assert sorted(p.name for p in staging.iterdir()) == ["not-ours"]
    clear_staging(tmp_path / "missing")  # nothing to clear is not an error


def test_a_streaming_delta_is_written_ahead_without_the_engine_lock(tmp_path: Path):
    from ecosys_core.sync.messages import ModificationDone

    from .harness import SECURE_ID

    a, b = make_devices(tmp_path, 2)
    a.write("video.bin", os.urandom(3 << 20))  # above BSDIFF_MAX: the receiver keeps a chunk signature
    a.scan()
    message = a.engine.outbox.modification(SECURE_ID, "video.bin", "", reply=True)  # what answers a NEED_STATE
    keys: list = []
    with b.engine._lock:  # another batch is being applied meanwhile
        writer = threading.Thread(target=lambda: keys.append(b.engine.prebuild(a.device_id, message)))
        writer.start()
        writer.join(20)
        assert not writer.is_alive() and keys[0] is not None
        assert not (b.root / "video.bin").exists()  # written ahead, not published
        assert [p.name.startswith(TEMP_PREFIX) for p in b.home.staging.iterdir()] == [True]
    results = b.engine.receive_many(a.device_id, [message])
    assert isinstance(results[0][0], ModificationDone)
    assert b.files() == a.files() and list(b.home.staging.iterdir()) == []
    # its signature is taken once it is in place, and is the one a pass over the file computes
    from ecosys_core.sync.chunking import digest_file
    assert b.engine.objects.signature(message.hash) == digest_file(b.root / "video.bin", with_signature=True).signature
    b.engine.discard_prebuilt(keys[0])  # used: nothing left to remove


def test_a_stream_that_does_not_hash_right_is_not_written_and_is_asked_again_whole(tmp_path: Path):
    from ecosys_core.sync.messages import NeedState

    a, b = make_devices(tmp_path, 2)
    a.write("doc.bin", os.urandom(512 << 10))  # streamed (above the inline size)
    a.scan()
    message = a.engine.outgoing(b.device_id)[0]
    blocks = message.delta

    def damaged():  # type: ignore[no-untyped-def]
        for block in blocks:
            yield block[:-1] + bytes([block[-1] ^ 1]) if len(block) > 100 else block

    message.delta = damaged()
    assert b.engine.prebuild(a.device_id, message) is None
    results = b.engine.receive_many(a.device_id, [message])
    assert isinstance(results[0][0], NeedState) and results[0][0].have_hash == ""
    assert b.files() == {} and list(b.home.staging.iterdir()) == []


@pytest.mark.parametrize("syncfs", ["real", "absent", "failing"])
def test_staged_temp_files_hold_their_content_however_they_are_made_durable(tmp_path: Path, monkeypatch, syncfs):
    """One syncfs per file system where the kernel has a trustworthy one; one fsync per file where it has
    none or it fails (a failing syncfs cannot be caused on a real disk here, so that case is replaced)."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(fsio.os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    if syncfs == "absent":
        monkeypatch.setattr(fsio, "_syncfs", None)
    elif syncfs == "failing":
        monkeypatch.setattr(fsio, "_syncfs", lambda fd: -1)
    elif fsio._syncfs is None:
        pytest.skip("this kernel has no syncfs that reports errors (Linux 5.8+)")
    staging = tmp_path / "staging"
    contents = [(tmp_path / "root" / f"d{i % 3}" / f"f{i}", os.urandom(i * 100)) for i in range(20)]
    blocked = tmp_path / "root" / "blocked"
    (tmp_path / "root").mkdir(exist_ok=True)
    blocked.write_bytes(b"a file where a folder should be")
    temps = fsio.write_temps(contents + [(blocked / "cannot", b"x")], staging)
    assert temps[-1] is None
    for (target, data), temp in zip(contents, temps):
        assert temp is not None and temp.parent == staging and temp.read_bytes() == data
    assert len(synced) == (0 if syncfs == "real" else len(contents))


def test_a_temp_file_whose_publishing_fails_is_removed(tmp_path: Path):
    import pytest

    from ecosys_core.sync.fsio import atomic_writer, commit_temp

    staging = tmp_path / "staging"
    staging.mkdir()
    target = tmp_path / "gone" / "file.txt"  # its folder vanished meanwhile: the rename fails
    (tmp_path / "gone").mkdir()
    with atomic_writer(target, staging) as (fh, temp):
        fh.write(b"content")
    (tmp_path / "gone").rmdir()
    with pytest.raises(OSError):
        commit_temp(temp, target, 1_000_000_000)
    assert list(staging.iterdir()) == []


class _MustNotBeRead(list):
    """A delta whose bytes fail the test if anything reads them."""

    def __iter__(self):
        raise AssertionError("an outdated change was decoded")


def test_an_outdated_change_is_answered_without_decoding_its_delta(tmp_path: Path):
    """Deciding comes before decoding: a change this device already has (or has newer) costs no
    decompression, whatever its delta holds."""
    from dataclasses import replace

    from ecosys_core.sync.messages import ModificationDone

    a, b = make_devices(tmp_path, 2)
    a.write("notes.txt", b"version one")
    a.scan()
    first = as_received(a.engine.outgoing(b.device_id), a.device_id)
    assert b.engine.receive_many(a.device_id, first)
    replayed = replace(first[0], delta=_MustNotBeRead([b"ignored"]))
    results = b.engine.receive_many(a.device_id, [replayed])
    assert isinstance(results[0], list) and isinstance(results[0][0], ModificationDone)


def test_a_target_folder_is_made_when_missing_and_a_file_in_its_place_is_not_a_folder(tmp_path: Path) -> None:
    staging = tmp_path / "home" / "staging"
    assert fsio.same_device(staging, tmp_path / "task" / "new" / "deep")
    assert (tmp_path / "task" / "new" / "deep").is_dir() and staging.is_dir()
    (tmp_path / "task" / "file").write_bytes(b"x")
    assert not fsio.same_device(staging, tmp_path / "task" / "file")
    assert (tmp_path / "task" / "file").read_bytes() == b"x"
