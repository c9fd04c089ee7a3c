"""Task member lists in the store, and the links they give: a task syncs with the devices that are live,
confirmed members of it and linked here (``task_devices``, derived from the list by
:func:`refresh_task_links`). The merge rules are in ``sync.membership``; here records are kept as they
are, with "" standing for this device (the store does not know its own id)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from .tables import Device, PendingEvent, PendingTarget, TaskDevice, TaskMember

ME = ""  # this device, in stored member records
IMPLICIT_AT = 2**53 - 1  # the unwritten record of a task's creator: any written record of it wins a tie


@dataclass(frozen=True)
class Member:
    """One record of a member list: ``device_id`` is in the task (or left it, ``removed``) as of ``seq``,
    written by ``added_by`` at ``changed_at`` (Unix time, ms)."""

    device_id: str
    seq: int
    removed: bool
    added_by: str
    changed_at: int

    def order(self) -> tuple[int, bool, int, str]:
        """Records about one device compare by this: the greater one wins: a higher seq, a removal at
        equal seq, then the earlier record (the first to add a device stands: a device that learns of
        a member from a share writes its own record of it later, which must not replace the original)."""
        return (self.seq, self.removed, -self.changed_at, self.added_by)


@dataclass(frozen=True)
class StoredMember:
    """A member record as this device keeps it, with whether the device showed it holds the task."""

    member: Member
    confirmed: bool


def wire_record(m: Member) -> dict[str, Any]:
    """``m`` as a MEMBERS list carries it (and a departure record keeps it)."""
    return {"device_id": m.device_id, "seq": m.seq, "removed": m.removed, "by": m.added_by, "at": m.changed_at}


def live_set(records: dict[str, Member]) -> set[str]:
    """The keys of the devices a merged list counts in: a record that is not a removal, written by a
    device of the list before that device's own removal (by the writers' clocks), and not a device
    adding itself back (only a task's creator writes its own record, at seq 0). Worked out from the
    merged list alone, so devices holding the same list agree, whatever order they learned it in: an
    addition made by a device that was being removed at the same time stands or falls alike everywhere."""
    out = set()
    for key, m in records.items():
        if m.removed:
            continue
        author = records.get(m.added_by)
        if m.added_by == m.device_id:
            valid = m.seq == 0
        else:
            valid = author is not None and (not author.removed or m.changed_at <= author.changed_at)
        if valid:
            out.add(key)
    return out


def with_me(records: dict[str, Member]) -> dict[str, Member]:
    """``records`` with this device's implicit record (a member since the task was made here) if absent."""
    return records if ME in records else {ME: Member(ME, 0, False, ME, IMPLICIT_AT), **records}


def now_s() -> int:
    """Unix time in milliseconds, as member records carry it."""
    return int(time.time() * 1000)


def read_members(session: Session, task_id: int) -> dict[str, StoredMember]:
    """The task's member records by device id ("" is this device; absent means a member since creation)."""
    # Plain SQL: read at every meeting and every list received, through the ORM it cost a good part of them
    rows = session.connection().connection.driver_connection.execute(
        "SELECT device_id, seq, removed, added_by, changed_at, confirmed FROM task_members WHERE task_id = ?",
        (task_id,)).fetchall()
    return {r[0]: StoredMember(Member(r[0], r[1], bool(r[2]), r[3], r[4]), bool(r[5])) for r in rows}


def write_member(session: Session, task_id: int, member: Member, *, confirmed: bool | None = None) -> None:
    """Store ``member`` (replacing the record about the same device); ``confirmed`` None keeps the flag."""
    raw = session.connection().connection.driver_connection
    raw.execute("INSERT INTO task_members (task_id, device_id, seq, removed, added_by, changed_at, confirmed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (task_id, device_id) DO UPDATE SET seq = excluded.seq, "
                "removed = excluded.removed, added_by = excluded.added_by, changed_at = excluded.changed_at"
                + (", confirmed = excluded.confirmed" if confirmed is not None else ""),
                (task_id, member.device_id, member.seq, int(member.removed), member.added_by, member.changed_at,
                 int(bool(confirmed))))


def set_confirmed(session: Session, task_id: int, device_id: str, confirmed: bool = True) -> bool:
    """Record whether ``device_id`` showed it holds the task with this device in it; True when that
    changed."""
    raw = session.connection().connection.driver_connection
    return raw.execute("UPDATE task_members SET confirmed = ? WHERE task_id = ? AND device_id = ? AND confirmed != ?",
                       (int(confirmed), task_id, device_id, int(confirmed))).rowcount > 0


def refresh_task_links(session: Session, task_id: int) -> tuple[set[str], set[str]]:
    """Make the task's links (``task_devices``) what its member list says: every live, confirmed member
    that is linked here, none when this device itself was removed. Pending events of devices that lose
    their link are dropped. Returns (devices that gained their link, devices that lost it)."""
    members = read_members(session, task_id)
    counted = live_set(with_me({d: m.member for d, m in members.items()}))
    wanted: set[str] = set()
    if ME in counted:
        live = [d for d, m in members.items() if d != ME and m.confirmed and d in counted]
        if live:
            wanted = set(session.scalars(select(Device.device_id).where(Device.device_id.in_(live),
                                                                        Device.linked.is_(True))))
    rows = {device_id: link for link, device_id in session.execute(
        select(TaskDevice, Device.device_id).join(Device, Device.id == TaskDevice.device_id)
        .where(TaskDevice.task_id == task_id))}
    lost = set(rows) - wanted
    for device_id in lost:
        session.delete(rows[device_id])
    # Nothing stays pending for a device the task does not sync with (whatever queued it, and when):
    # pending storage is bounded by paths × the devices linked now.
    events = select(PendingEvent.id).where(PendingEvent.task_id == task_id)
    session.execute(delete(PendingTarget).where(PendingTarget.device_id.not_in(wanted),
                                                PendingTarget.event_id.in_(events)))
    gained = wanted - set(rows)
    for device_id in gained:
        device = session.scalar(select(Device.id).where(Device.device_id == device_id))
        session.add(TaskDevice(task_id=task_id, device_id=device))
    session.flush()
    return gained, lost


def refresh_all_links(session: Session, device_id: str) -> None:
    """:func:`refresh_task_links` for every task whose list names ``device_id`` (it was linked or
    unlinked: only those tasks' links can change)."""
    for task_id in tasks_with_member(session, device_id):
        refresh_task_links(session, task_id)


def tasks_with_member(session: Session, device_id: str) -> list[int]:
    """Ids of the tasks whose member list names ``device_id`` (live or removed)."""
    return list(session.scalars(select(TaskMember.task_id).where(TaskMember.device_id == device_id)))
