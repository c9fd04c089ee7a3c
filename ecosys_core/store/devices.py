"""Devices in the store: seen, linked (pinned), unlinked; and which tasks each is linked with."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import EcosysError, NotFound
from .database import Store
from .members import (
    ME,
    Member,
    live_set,
    now_s,
    read_members,
    refresh_all_links,
    refresh_task_links,
    with_me,
    write_member,
)
from .tables import Device, SyncTask, TaskDevice, utcnow

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def check_device_id(device_id: str) -> str:
    """Return ``device_id`` lower-cased if it is 64 hex digits (256 bits), else raise EcosysError."""
    device_id = device_id.strip().lower()
    if not _HEX64.match(device_id):
        raise EcosysError(f"not a device id (64 hex digits expected): {device_id[:80]!r}")
    return device_id


@dataclass(frozen=True)
class DeviceInfo:
    """A read-only snapshot of a device row."""

    device_id: str
    name: str
    last_address: str | None
    is_connected: bool
    last_seen: datetime | None
    linked: bool


def _info(row: Device) -> DeviceInfo:
    seen = row.last_seen.replace(tzinfo=timezone.utc) if row.last_seen and not row.last_seen.tzinfo else row.last_seen
    return DeviceInfo(row.device_id, row.name, row.last_address, row.is_connected, seen, row.linked)


def upsert_device(store: Store, device_id: str, *, name: str | None = None, address: str | None = None,
                  connected: bool | None = None, linked: bool | None = None) -> DeviceInfo:
    """Create or update the device ``device_id``; only the given fields change. Seeing it updates last_seen."""
    device_id = check_device_id(device_id)
    with store.session() as session:
        row = session.scalar(select(Device).where(Device.device_id == device_id))
        if row is None:
            row = Device(device_id=device_id, name=name or "", linked=False, is_connected=False)
            session.add(row)
        if name is not None:
            row.name = name
        if address is not None:
            row.last_address = address
        if connected is not None:
            row.is_connected = connected
            if connected:
                row.last_seen = utcnow()
        if linked is not None and row.linked != linked:
            row.linked = linked
            session.flush()
            refresh_all_links(session, device_id)  # a member linked (or no longer) here starts (or stops) syncing
            store.touch()
        session.flush()
        return _info(row)


def _known(session: Session, device_id: str) -> Device:
    row = session.scalar(select(Device).where(Device.device_id == device_id))
    if row is None:
        raise NotFound(f"unknown device {device_id[:16]}…")
    return row


def get_device(store: Store, device_id: str) -> DeviceInfo:
    """Return the device ``device_id``; raise NotFound."""
    with store.session() as session:
        return _info(_known(session, check_device_id(device_id)))


def list_devices(store: Store) -> list[DeviceInfo]:
    """Every known device, linked ones first."""
    with store.session() as session:
        rows = session.scalars(select(Device).order_by(Device.linked.desc(), Device.name))
        return [_info(r) for r in rows]


def forget_device(store: Store, device_id: str, *, leaves_tasks: bool = False) -> list[str]:
    """Unlink the device: drop its task links and its place in every devices_to_patch, and mark it
    unlinked. It stays known (name, address, last seen), so it can be found and linked again. With
    ``leaves_tasks`` (the person unlinked it here) it is also removed from every task's member list, a
    removal the other members learn. Returns the names of the tasks it was linked with."""
    device_id = check_device_id(device_id)
    from .tables import PendingTarget

    with store.session() as session:
        row = _known(session, device_id)
        shared = sorted(session.scalars(
            select(SyncTask.name).join(TaskDevice, TaskDevice.task_id == SyncTask.id)
            .where(TaskDevice.device_id == row.id)))
        if leaves_tasks:
            for task_id in session.scalars(select(SyncTask.id)):
                records = {d: m.member for d, m in read_members(session, task_id).items()}
                if device_id in live_set(with_me(records)):
                    write_member(session, task_id, Member(device_id, records[device_id].seq + 1, True, ME, now_s()))
        for link in session.scalars(select(TaskDevice).where(TaskDevice.device_id == row.id)):
            session.delete(link)
        for target in session.scalars(select(PendingTarget).where(PendingTarget.device_id == device_id)):
            session.delete(target)
        row.linked = False
        session.flush()
        refresh_all_links(session, device_id)
        store.touch()
        return shared


def link_task_device(store: Store, secure_id: str, device_id: str) -> None:
    """Make ``device_id`` a confirmed member of task ``secure_id`` here (both must exist; idempotent): the
    task then syncs with it while it is linked. A device removed before comes back with a newer record."""
    device_id = check_device_id(device_id)
    with store.session() as session:
        task = session.scalar(select(SyncTask).where(SyncTask.secure_id == secure_id))
        device = session.scalar(select(Device).where(Device.device_id == device_id))
        if task is None or device is None:
            raise NotFound("unknown task or device")
        records = {d: m.member for d, m in read_members(session, task.id).items()}
        record = records.get(device_id)
        if device_id not in live_set(with_me(records)):
            seq = record.seq + 1 if record is not None else 0
            write_member(session, task.id, Member(device_id, seq, False, ME, now_s()), confirmed=True)
        else:
            write_member(session, task.id, record, confirmed=True)
        refresh_task_links(session, task.id)
        store.touch()


def task_device_ids(store: Store, secure_id: str) -> list[str]:
    """The device ids a task is linked with."""
    with store.session() as session:
        rows = session.execute(
            select(Device.device_id).join(TaskDevice, TaskDevice.device_id == Device.id)
            .join(SyncTask, SyncTask.id == TaskDevice.task_id).where(SyncTask.secure_id == secure_id)
        )
        return sorted(r[0] for r in rows)


def forget_unlinked_beyond(store: Store, keep: int) -> int:
    """Delete the devices that are not linked, least recently seen first, until at most ``keep`` are
    left (a stranger's fresh certificates must not grow the store for ever); return how many went."""
    with store.session() as session:
        rows = session.scalars(select(Device).where(Device.linked.is_(False))
                               .order_by(Device.last_seen.desc().nulls_last(), Device.id.desc())).all()
        extra = rows[keep:]
        for row in extra:
            session.delete(row)
        if extra:
            store.touch()
        return len(extra)
