"""The sync rules one at a time, with real folders and stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ecosys_core.store.index import load_entries
from ecosys_core.store.index import task_row
from ecosys_core.sync.messages import ModificationDone, NeedState

from .harness import SECURE_ID, as_received, make_devices, meet


def entries(device):
    with device.store.session() as s:
        return load_entries(s, task_row(s, SECURE_ID).id)


def test_create_edit_delete_travel(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("docs/note.txt", b"hello")
    a.scan()
    meet(a, b)
    assert b.files() == {"docs/note.txt": b"hello"}
    a.write("docs/note.txt", b"hello world")
    a.scan()
    meet(a, b)
    assert b.files()["docs/note.txt"] == b"hello world"
    a.delete("docs/note.txt")
    a.scan()
    meet(a, b)
    assert b.files() == {}
    assert entries(b)["docs/note.txt"].deleted
    assert a.engine.pending_counts(SECURE_ID) == {} and b.engine.pending_counts(SECURE_ID) == {}


def test_origin_mtime_is_kept(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("x", b"1")
    os.utime(a.root / "x", ns=(1_600_000_000_000_000_000, 1_600_000_000_000_000_000))
    a.scan()
    meet(a, b)
    assert (b.root / "x").stat().st_mtime_ns == 1_600_000_000_000_000_000


def test_outdated_event_answers_done_without_touching_the_file(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("f", b"v1")
    a.scan()
    old = a.engine.outgoing(b.device_id)[0]
    meet(a, b)
    a.write("f", b"v2")
    a.scan()
    meet(a, b)
    before = (b.root / "f").stat().st_mtime_ns
    answers = b.engine.receive(a.device_id, old)
    assert isinstance(answers[0], ModificationDone) and (b.root / "f").read_bytes() == b"v2"
    assert (b.root / "f").stat().st_mtime_ns == before


def test_wrong_base_asks_for_state_instead_of_patching(tmp_path: Path):
    a, b, c = make_devices(tmp_path, 3)
    v1 = os.urandom(3 << 20)
    a.write("big.bin", v1)
    a.scan()
    meet(a, b)
    meet(b, c)  # c learns v1 through b, so b knows c's base is v1
    v2 = v1[:1000] + b"0123456789" + v1[1010:]
    a.write("big.bin", v2)
    a.scan()
    meet(a, b)  # b now owes c the path, from base v1
    meet(a, c)  # but c gets v2 straight from a
    v3 = v2[: 2 << 20] + b"abcde" + v2[(2 << 20) + 5:]
    b.write("big.bin", v3)
    b.scan()
    flags = []
    receive = c.engine.receive

    def spy(peer, message):
        answers = receive(peer, message)
        flags.extend(x.flag for x in answers)
        return answers

    c.engine.receive = spy
    meet(b, c)  # b's delta is built on v1; c has v2: c asks for its state instead of patching blindly
    assert "NEED_STATE" in flags
    assert c.files()["big.bin"] == v3


def test_concurrent_edits_keep_both(tmp_path: Path):
    a, b, c = make_devices(tmp_path, 3)
    a.write("n.txt", b"base")
    a.scan()
    meet(a, b)
    meet(a, c)
    a.write("n.txt", b"from a")
    os.utime(a.root / "n.txt", ns=(2_000_000_000_000_000_000,) * 2)
    a.scan()
    b.write("n.txt", b"from b")
    os.utime(b.root / "n.txt", ns=(1_900_000_000_000_000_000,) * 2)
    b.scan()
    meet(a, b)
    meet(b, c)
    meet(a, c)
    for d in (a, b, c):
        files = d.files()
        assert files["n.txt"] == b"from a"
        copies = {k: v for k, v in files.items() if ".sync-conflict-" in k}
        assert list(copies.values()) == [b"from b"], d.name
    assert a.files() == b.files() == c.files()


def _edit(device, rel: str, data: bytes, mtime_ns: int) -> None:
    device.write(rel, data)
    os.utime(device.root / rel, ns=(mtime_ns, mtime_ns))
    device.scan()


@pytest.mark.parametrize("loser_side", ["local", "remote"])
def test_two_conflicts_lost_by_one_device_in_one_second_keep_both_copies(tmp_path: Path, loser_side: str):
    """A conflict copy is named from the loser's device and second: a second loss by the same device in
    the same second must not be taken for the first copy (found by the convergence test: the edit was
    dropped). Each device takes turns receiving, so both the local-loser and remote-loser paths run."""
    a, b = make_devices(tmp_path, 2)
    second = 1_900_000_000 * 10**9
    loser, winner = (b, a) if loser_side == "local" else (a, b)
    for n in (1, 2):
        _edit(loser, "e", b"lost %d" % n, second + n * 100_000_000)  # both in the same second
        _edit(winner, "e", b"won %d" % n, second + 10**9 * 5 + n)
        # The side that receives the other's version resolves the conflict: with "local", b (the loser)
        # receives a's edit; with "remote", b (the winner) receives a's losing edit.
        for m in as_received(a.engine.outgoing(b.device_id), a.device_id):
            b.engine.receive(a.device_id, m)
        meet(a, b)
    for d in (a, b):
        files = d.files()
        assert files["e"] == b"won 2", d.name
        assert sorted(v for k, v in files.items() if ".sync-conflict-" in k) == [b"lost 1", b"lost 2"], d.name
    assert a.files() == b.files()


def test_identical_concurrent_edits_merge_silently(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("same", b"identical")
    b.write("same", b"identical")
    a.scan()
    b.scan()
    meet(a, b)
    assert a.files() == b.files() == {"same": b"identical"}
    assert entries(a)["same"].version == entries(b)["same"].version


def test_backup_mode_deletions_are_not_sent(tmp_path: Path):
    a, b = make_devices(tmp_path, 2, backup={0})
    a.write("photo.jpg", b"jpeg")
    a.scan()
    meet(a, b)
    a.delete("photo.jpg")
    a.scan()
    meet(a, b)
    assert b.files() == {"photo.jpg": b"jpeg"}
    b.write("photo.jpg", b"jpeg edited")
    b.scan()
    meet(a, b)
    assert a.files() == {"photo.jpg": b"jpeg edited"}  # incoming changes still apply


def test_relay_through_a_third_device(tmp_path: Path):
    a, b, c = make_devices(tmp_path, 3)
    a.write("r.txt", b"from a")
    a.scan()
    meet(a, b)  # c is away
    meet(b, c)  # b passes on what it learned from a
    assert c.files() == {"r.txt": b"from a"}
    assert a.engine.pending_counts(SECURE_ID) == {c.device_id: 1}
    meet(a, c)
    assert a.engine.pending_counts(SECURE_ID) == {}


def test_small_edit_of_small_file_travels_as_bsdiff(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    data = os.urandom(200_000)
    a.write("s.bin", data)
    a.scan()
    meet(a, b)
    a.write("s.bin", data[:500] + b"X" + data[500:])
    a.scan()
    (message,) = a.engine.outgoing(b.device_id)
    blocks = list(message.delta)
    assert blocks[0][:1] == b"B" and sum(map(len, blocks)) < 1000
    message.delta = iter(blocks)
    b.engine.receive(a.device_id, message)
    assert b.files()["s.bin"] == data[:500] + b"X" + data[500:]


def test_tampered_content_is_discarded(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    a.write("t", b"good")
    a.scan()
    (message,) = a.engine.outgoing(b.device_id)
    message.hash = "00" * 32
    answers = b.engine.receive(a.device_id, message)
    assert b.files() == {} and answers and answers[0].flag == "NEED_STATE"
    assert not [p for p in b.root.rglob("*") if p.is_file()]


def test_unlinked_device_and_unsafe_paths_are_refused_and_nothing_is_written(tmp_path: Path):
    import hashlib

    import pytest

    from ecosys_core.errors import ChangeRefused as Refused

    a, b = make_devices(tmp_path, 2)
    a.write("ok.txt", b"x")
    a.scan()
    (message,) = a.engine.outgoing(b.device_id)
    stranger = hashlib.sha256(b"stranger").hexdigest()
    with pytest.raises(Refused, match="not shared"):
        b.engine.receive(stranger, message)
    for bad in ("../escape.txt", "/etc/passwd", "C:/x", "a/../../b", "a\x00b", "dir\\x"):
        message.path = bad
        with pytest.raises(Refused, match="unsafe path"):
            b.engine.receive(a.device_id, message)
    (b.root / "link").symlink_to(tmp_path)
    message.path = "link/escaped.txt"
    with pytest.raises(Refused, match="unsafe path"):
        b.engine.receive(a.device_id, message)
    assert b.files() == {} and not (tmp_path / "escaped.txt").exists() and not (tmp_path / "escape.txt").exists()
    message.secure_id = "00" * 16
    with pytest.raises(Refused):
        b.engine.receive(a.device_id, message)


@pytest.mark.parametrize("inline", [False, True], ids=["streamed", "inline"])
def test_a_batch_applies_like_one_by_one_and_a_bad_message_spoils_nothing(tmp_path: Path, monkeypatch, inline):
    from ecosys_core.sync import fsio
    from ecosys_core.errors import ChangeRefused as Refused

    a, b = make_devices(tmp_path, 2)
    for i in range(6):
        a.write(f"d{i % 2}/f{i}.txt", f"content {i}".encode())
    a.scan()
    messages = a.engine.outgoing(b.device_id)
    if inline:  # written ahead and synced together before being applied
        messages = as_received(messages, a.device_id)
    messages[2].path = "../escape.txt"  # a hostile one in the middle of the batch
    synced: list[Path] = []
    monkeypatch.setattr(fsio, "_sync_dir_now", synced.append)  # recorded instead of done: the only faked part
    results = b.engine.receive_many(a.device_id, messages)
    assert isinstance(results[2], Refused)
    assert all(isinstance(r, list) and isinstance(r[0], ModificationDone) for i, r in enumerate(results) if i != 2)
    assert len(b.files()) == 5 and not (tmp_path / "escape.txt").exists()
    if inline:  # one transaction for the batch: each folder synced once, before the index commits
        assert sorted(synced) == sorted({b.root / "d0", b.root / "d1"})
    else:  # a delta still streaming in is applied on its own, its folder synced before its entry commits
        assert len(synced) == 5 and set(synced) == {b.root / "d0", b.root / "d1"}
    assert not [p for p in b.root.rglob("*") if fsio.is_temp_name(p.name)]
    meet(a, b)
    assert b.files() == a.files()


def test_written_ahead_content_is_right_whatever_the_apply_decides(tmp_path: Path):
    """A batch mixing edits on a base, a conflict, an outdated message, a duplicate and a delta that lies
    about its hash: the result is what one-by-one application gives, and no temp file is left."""
    from ecosys_core.sync.fsio import is_temp_name

    a, b, c = make_devices(tmp_path, 3)
    for i in range(4):
        a.write(f"f{i}.txt", b"base %d" % i * 50)
    a.scan()
    meet(a, b)
    meet(a, c)
    a.write("f0.txt", b"edited on a " * 40)  # an edit on a base b has
    a.write("f1.txt", b"a's side " * 30)  # concurrent with c's edit below: a conflict on b
    a.write("new.txt", b"brand new")
    a.scan()
    c.write("f1.txt", b"c's side " * 30)
    c.scan()
    meet(c, b)
    messages = as_received(a.engine.outgoing(b.device_id), a.device_id)
    liar = next(m for m in messages if m.path == "new.txt")
    liar.delta = [b"\x00" * 9]  # same size, other content: verified and refused, never staged
    messages.append(as_received(a.engine.outgoing(b.device_id), a.device_id)[0])  # a duplicate of the first
    results = b.engine.receive_many(a.device_id, messages)
    assert not [p for p in b.root.rglob("*") if is_temp_name(p.name)]
    assert b.files()["f0.txt"] == b"edited on a " * 40
    assert not (b.root / "new.txt").exists()
    assert any(isinstance(r, list) and r and isinstance(r[0], NeedState) for r in results)
    for _ in range(2):
        meet(a, b)
        meet(b, c)
        meet(a, c)
    assert a.files() == b.files() == c.files()
    assert len([p for p in b.files() if "sync-conflict" in p]) == 1


def test_a_delta_streaming_in_is_applied_with_no_index_write_lock_held(tmp_path: Path):
    """The daemon's event loop both feeds a streaming delta and writes to the store (a peer connects):
    if a batch held the index's write lock while waiting on the stream, the two would wait on each other."""
    import threading

    from ecosys_core.store.devices import upsert_device

    a, b = make_devices(tmp_path, 2)
    a.write("small.txt", b"small")
    a.write("medium.bin", os.urandom(100 << 10))
    a.scan()
    messages = {m.path: m for m in a.engine.outgoing(b.device_id)}
    streaming = messages["medium.bin"]
    blocks = streaming.delta
    waited: list[bool] = []

    def network() -> object:
        writer = threading.Thread(target=upsert_device, args=(b.store, "ee" * 32), kwargs={"name": "newcomer"})
        writer.start()
        writer.join(5)  # the store's busy timeout is 10 s: a held write lock would show here
        waited.append(writer.is_alive())
        writer.join()
        yield from blocks

    streaming.delta = network()
    batch = as_received([messages["small.txt"]], a.device_id) + [streaming]
    results = b.engine.receive_many(a.device_id, batch)
    assert waited == [False]
    assert all(isinstance(r, list) and isinstance(r[0], ModificationDone) for r in results)
    assert b.files() == a.files()


def test_a_link_made_during_a_batch_waits_for_it_and_is_seen_after_it(tmp_path: Path):
    """A batch holds the index's write lock from its start, so it never reads an older snapshot than what
    it then writes over; a link made meanwhile (another thread) waits for the batch, and what the engine
    caches (a task's linked devices) shows it once the batch is done."""
    import threading
    import time

    from ecosys_core.store.devices import link_task_device, upsert_device

    a, b = make_devices(tmp_path, 2)
    newcomer = "ee" * 32

    def link() -> None:
        upsert_device(b.store, newcomer, name="newcomer", linked=True)
        link_task_device(b.store, SECURE_ID, newcomer)

    worker = threading.Thread(target=link)
    with b.store.batch():
        assert newcomer not in b.engine.contexts.get(SECURE_ID).linked
        worker.start()
        time.sleep(0.3)
        assert worker.is_alive()  # waiting for the batch's write lock
    worker.join(10)
    assert not worker.is_alive()
    assert newcomer in b.engine.contexts.get(SECURE_ID).linked


def test_what_is_pending_comes_a_page_at_a_time_and_all_of_it(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    for i in range(10):
        a.write(f"f{i}.txt", b"x" * i)
    a.scan()
    whole = a.engine.pending(b.device_id)
    pages, cursor = [], (0, 0)
    while page := a.engine.pending(b.device_id, cursor, 3):
        assert len(page) <= 3
        pages += page
        cursor = page[-1].cursor
    assert [(p.path, p.version) for p in pages] == [(p.path, p.version) for p in whole] and len(whole) == 10
    meet(a, b)
    assert a.engine.pending(b.device_id, (0, 0), 3) == []
    for d in (a, b):
        d.close()
