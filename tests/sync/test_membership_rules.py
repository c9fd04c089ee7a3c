"""The member-list rules on real engines and stores (no network): what a peer may add, remove or replay,
and what it can never make this device do."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ecosys_core.errors import ChangeRefused
from ecosys_core.store.devices import link_task_device, upsert_device
from ecosys_core.store.members import Member
from ecosys_core.sync.membership import wire_record
from ecosys_core.sync.messages import Members

from .harness import SECURE_ID, make_devices, meet

STRANGER = hashlib.sha256(b"stranger").hexdigest()


def view(d) -> dict[str, bool]:
    """device id → live, as ``d`` sees the task's members."""
    return {v.device_id: not v.removed for v in d.engine.members.view(SECURE_ID)}


def record(device: str, seq: int, removed: bool, by: str, at: int = 1) -> dict:
    return wire_record(Member(device, seq, removed, by, at))


@pytest.fixture
def trio(tmp_path: Path):
    devices = make_devices(tmp_path, 3)
    yield devices
    for d in devices:
        d.close()


def test_lists_spread_and_removals_are_not_undone_by_older_lists(trio):
    a, b, c = trio
    for x, y in ((a, b), (b, c), (a, c)):
        meet(x, y)
    assert view(a) == view(b) == view(c) == {d.device_id: True for d in trio}
    stale = b.engine.members.message(SECURE_ID)  # b's list before the removal
    assert a.engine.members.remove(SECURE_ID, c.device_id)
    meet(a, b)
    assert view(b)[c.device_id] is False and b.engine.pending_counts(SECURE_ID).get(c.device_id) is None
    a.engine.receive(b.device_id, stale)  # replayed: the older list does not bring c back
    assert view(a)[c.device_id] is False
    c.write("late.txt", b"c's")
    c.scan()
    meet(c, a)  # c learns it was removed; nothing goes either way from then on
    assert view(c)[c.device_id] is False
    assert "late.txt" not in a.files() and c.engine.outgoing(a.device_id) == []
    a.engine.receive(c.device_id, c.engine.members.message(SECURE_ID))  # c's own list changes nothing now
    assert view(a)[c.device_id] is False


def test_a_removed_device_never_adds_itself_back(trio):
    a, b, c = trio
    assert a.engine.members.remove(SECURE_ID, c.device_id)
    forged = Members(SECURE_ID, [record(c.device_id, 5, False, c.device_id), record(a.device_id, 0, False, a.device_id)])
    a.engine.receive(c.device_id, forged)
    assert view(a)[c.device_id] is False
    # nor does its word that another member shared it again: that comes from the member itself
    a.engine.receive(c.device_id, Members(SECURE_ID, [record(c.device_id, 9, False, b.device_id)]))
    assert view(a)[c.device_id] is False
    # relayed by a member, the self-addition is still ignored
    a.engine.receive(b.device_id, Members(SECURE_ID, [record(c.device_id, 5, False, c.device_id),
                                                      record(b.device_id, 0, False, b.device_id)]))
    assert view(a)[c.device_id] is False


def test_a_new_share_brings_a_device_back_and_a_concurrent_removal_wins(trio):
    a, b, c = trio
    assert a.engine.members.remove(SECURE_ID, c.device_id)
    link_task_device(a.store, SECURE_ID, c.device_id)  # 'task share' made here: seq 2
    assert view(a)[c.device_id] is True
    # b removed c at the same seq meanwhile: a removal wins a tie, on both sides alike
    b.engine.receive(a.device_id, Members(SECURE_ID, [record(c.device_id, 2, False, a.device_id),
                                                      record(a.device_id, 0, False, a.device_id)]))
    a.engine.receive(b.device_id, Members(SECURE_ID, [record(c.device_id, 2, True, b.device_id),
                                                      record(b.device_id, 0, False, b.device_id)]))
    b.engine.receive(a.device_id, a.engine.members.message(SECURE_ID))
    assert view(a)[c.device_id] is False and view(b)[c.device_id] is False


def test_a_member_adding_a_device_this_one_is_not_linked_with_gets_nothing_sent_there(trio):
    a, b, _ = trio
    a.write("secret.txt", b"only for members")
    a.scan()
    a.engine.receive(b.device_id, Members(SECURE_ID, [record(STRANGER, 0, False, b.device_id),
                                                      record(b.device_id, 0, False, b.device_id)]))
    assert view(a)[STRANGER] is True  # recorded as b says...
    assert STRANGER not in a.engine.pending_counts(SECURE_ID)  # ...but nothing is kept or sent for it
    upsert_device(a.store, STRANGER, linked=True)  # even once linked here, until it shows it holds the task
    assert a.engine.outgoing(STRANGER) == []


def test_lists_from_non_members_and_malformed_lists_are_refused_and_change_nothing(tmp_path: Path):
    a, b, c, d = make_devices(tmp_path, 4)
    try:
        assert a.engine.members.remove(SECURE_ID, d.device_id)
        before = view(a)
        bad_lists = [
            [],
            [record(b.device_id, 0, False, b.device_id)] * 2,  # listed twice
            [{**record(b.device_id, 0, False, b.device_id), "extra": 1}],
            [record("zz" * 32, 0, False, b.device_id)],
            [record(b.device_id, -1, False, b.device_id)],
            [record(b.device_id, 2**60, False, b.device_id)],
            [{**record(b.device_id, 0, False, b.device_id), "removed": "no"}],
            [record(hashlib.sha256(str(i).encode()).hexdigest(), 0, False, b.device_id) for i in range(300)],
            "not a list",
        ]
        for bad in bad_lists:
            with pytest.raises(ChangeRefused):
                a.engine.receive(b.device_id, Members(SECURE_ID, bad))  # type: ignore[arg-type]
        # a removed device (d) does not bring itself back; a device nobody added (the stranger) is refused
        a.engine.receive(d.device_id, Members(SECURE_ID, [record(d.device_id, 9, False, b.device_id),
                                                          record(b.device_id, 0, False, b.device_id)]))
        upsert_device(a.store, STRANGER, linked=True)
        with pytest.raises(ChangeRefused):
            a.engine.receive(STRANGER, Members(SECURE_ID, [record(STRANGER, 0, False, STRANGER)]))
        with pytest.raises(ChangeRefused):
            a.engine.receive(b.device_id, Members("77" * 16, [record(b.device_id, 0, False, b.device_id)]))
        assert view(a) == before
    finally:
        for x in (a, b, c, d):
            x.close()


def test_a_device_that_left_tells_the_members_it_was_linked_with(trio):
    from ecosys_core.store.tasks import remove_task

    a, b, c = trio
    remove_task(c.store, SECURE_ID)
    meet(c, a)
    assert view(a)[c.device_id] is False
    meet(a, b)
    assert view(b)[c.device_id] is False
    a.write("after.txt", b"x")
    a.scan()
    assert c.device_id not in a.engine.pending_counts(SECURE_ID)


def test_a_member_away_for_long_is_reported_not_dropped(trio):
    from datetime import datetime, timedelta, timezone

    from ecosys_core.status import collect_status
    from ecosys_core.store.settings_kv import set_setting
    from ecosys_core.store.tables import Device

    a, b, c = trio
    a.write("for-b.txt", b"x")
    a.scan()
    with a.store.session() as session:
        for row in session.query(Device):
            row.last_seen = datetime.now(timezone.utc) - (timedelta(days=40) if row.device_id == b.device_id
                                                          else timedelta(days=1))
    status = collect_status(a.store, name="a", readable_id="A", me=a.device_id)
    task = status["tasks"][0]
    rows = {m["device_id"]: m for m in task["members"]}
    assert rows[b.device_id]["away"] and not rows[c.device_id]["away"] and rows[a.device_id]["state"] == "this device"
    assert rows[b.device_id]["pending"] == 1 and rows[b.device_id]["state"] == "member"  # still kept for it
    assert task["away"] == [b.device_id[:6]]
    set_setting(a.store, "member_away_days", "60")
    assert collect_status(a.store, name="a", readable_id="A", me=a.device_id)["tasks"][0]["away"] == []


def test_unlinking_a_device_removes_it_from_every_task_and_no_introducer_brings_it_back(trio):
    from types import SimpleNamespace

    from ecosys_core.introductions import Introductions, set_introducer
    from ecosys_core.linking import unlink_device

    a, b, c = trio
    hook = SimpleNamespace(device_unlinked=lambda **kw: None, device_linked=lambda **kw: None)
    unlink_device(a.store, hook, c.device_id, leaves_tasks=True)  # what 'ecosys unlink' does
    assert view(a)[c.device_id] is False
    meet(a, b)
    assert view(b)[c.device_id] is False  # the other members learn it
    set_introducer(a.store, b.device_id, True)
    intro = Introductions(a.device_id, a.store, hook, None, None)  # type: ignore[arg-type]
    assert intro._take(b.device_id, {"device_id": c.device_id, "name": "c", "address": "127.0.0.1:9"}) is None
    stranger = hashlib.sha256(b"new").hexdigest()
    assert intro._take(b.device_id, {"device_id": stranger, "name": "n", "address": "not an address"}) == stranger
