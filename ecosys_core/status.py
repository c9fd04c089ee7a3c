"""The status of a device as plain data: this device, the devices it knows, its tasks and what each
linked device is still owed (retard). Built by one function for the daemon (with live connections) and
for the CLI when no daemon runs, so both print the same keys.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .device_ids import readable_id, short_id_text
from .logs import log_file
from .store import Store
from .store.devices import DeviceInfo, list_devices
from .store.index import find_task, pending_counts
from .store.members import ME, live_set, read_members, with_me
from .store.settings_kv import get_setting
from .store.tables import FileEntry
from .store.tasks import list_tasks
from .sync.ignores import IgnoreFileError, TaskIgnores, ignore_defaults
from .sync.places import CONFLICT_MARK
from .sync.running import RunningApps
from .types import TaskInfo

AWAY_DAYS = 30.0  # default of the ``member_away_days`` setting

Transfers = Callable[[str], list[dict[str, Any]] | None]  # a device's transfers; None when not connected


def device_row(device: DeviceInfo, transfers: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One device as the status and ``ecosys devices --json`` show it."""
    return {"name": device.name, "id": readable_id(device.device_id), "device_id": device.device_id,
            "linked": device.linked,
            "connected": transfers is not None, "address": device.last_address,
            "last_seen": device.last_seen.isoformat() if device.last_seen else None,
            "transfers": transfers or []}


def member_rows(session: Session, task_id: int, me: str, devices: dict[str, DeviceInfo],
                away_after: timedelta) -> list[dict[str, Any]]:
    """The members of a task as status shows them, this device first: ``state`` (``this device``,
    ``member``, ``waiting``: it has not shown it holds the task yet, ``not linked here``, ``removed``),
    what is still ``pending`` for it, when it was ``last_seen`` and whether it is ``away`` (not seen for
    longer than ``away_after``: reported, never dropped)."""
    pending = pending_counts(session, task_id)
    records = read_members(session, task_id)
    rows = [] if ME in records else [{"device_id": me, "name": "", "state": "this device", "pending": 0,
                                      "last_seen": None, "away": False, "added_by": me}]
    now = datetime.now(timezone.utc)
    live = live_set(with_me({d: m.member for d, m in records.items()}))
    for device_id, stored in sorted(records.items()):
        real = device_id or me
        info = devices.get(real)
        seen = info.last_seen if info else None
        if device_id == ME:
            state = "this device" if ME in live else "removed"
        elif device_id not in live:
            state = "removed"
        elif info is None or not info.linked:
            state = "not linked here"
        else:
            state = "member" if stored.confirmed else "waiting"
        row = {"device_id": real, "name": info.name if info else "", "state": state,
               "pending": pending.get(real, 0), "last_seen": seen.isoformat() if seen else None,
               "away": state in ("member", "waiting") and not (info and info.is_connected)
               and now - (seen or datetime.fromtimestamp(stored.member.changed_at / 1000, timezone.utc)) > away_after,
               "added_by": stored.member.added_by or me}
        (rows.insert(0, row) if device_id == ME else rows.append(row))
    return rows


def away_after(store: Store) -> timedelta:
    """How long a member may stay unseen before status reports it away (setting ``member_away_days``)."""
    try:
        return timedelta(days=float(get_setting(store, "member_away_days") or AWAY_DAYS))
    except ValueError:
        return timedelta(days=AWAY_DAYS)


def collect_status(store: Store, *, name: str, readable_id: str, me: str = "", port: int | None = None,
                   live: Transfers = lambda _device_id: None) -> dict[str, Any]:
    """The status: ``device`` (name, readable id, port when a daemon listens, the daemon's log file),
    ``devices`` (see :func:`device_row`) and ``tasks`` (files, bytes, pending events per device name and
    the ``members``, see :func:`member_rows`; ``away`` names the members not seen for too long)."""
    infos = list_devices(store)
    devices = [device_row(d, live(d.device_id)) for d in infos]
    names = {d["device_id"]: d["name"] or short_id_text(d["device_id"]) for d in devices}
    by_id = {d.device_id: d for d in infos}
    limit = away_after(store)
    running = RunningApps()
    tasks = []
    with store.session() as session:
        for task in list_tasks(store):
            ref = find_task(session, task.secure_id)
            if ref is None:  # removed meanwhile
                continue
            files, size, last_ns = session.execute(
                select(func.count(), func.coalesce(func.sum(FileEntry.size), 0), func.max(FileEntry.modified_ns))
                .where(FileEntry.task_id == ref.id, FileEntry.deleted.is_(False))
            ).one()
            pending = pending_counts(session, ref.id)
            conflicts = session.scalar(select(func.count()).where(
                FileEntry.task_id == ref.id, FileEntry.deleted.is_(False),
                FileEntry.path.contains(CONFLICT_MARK, autoescape=True))) or 0
            members = member_rows(session, ref.id, me, by_id, limit)
            tasks.append({"name": task.name, "secure_id": task.secure_id, "root": str(task.root),
                          "waiting": task_waiting(task, running),
                          "parts": [{"name": p.name, "path": str(p.path), "file": p.file} for p in task.parts],
                          "kind": task.kind.value, "backup_mode": task.backup_mode, "files": files, "bytes": size,
                          "conflicts": conflicts,
                          "last_change": datetime.fromtimestamp(last_ns / 1e9, timezone.utc).isoformat() if last_ns else None,
                          "pending": {names.get(d, short_id_text(d)): n for d, n in sorted(pending.items())},
                          "members": members,
                          "away": [m["name"] or short_id_text(m["device_id"]) for m in members if m["away"]]})
    device = {"name": name, "id": readable_id, "port": port, "log": str(log_file(store.home / "logs"))}
    return {"device": device, "devices": devices, "tasks": tasks}


def task_waiting(task: TaskInfo, running: RunningApps | None = None) -> str | None:
    """Why the task does not sync now, in a line (its app runs here, its ignore patterns are broken),
    or None."""
    try:
        TaskIgnores(task.root, ignore_defaults(task)).refresh()
    except IgnoreFileError as exc:
        return f"the ignore patterns must be mended: {exc}"
    return (running or RunningApps()).reason(task)


def task_members(store: Store, me: str) -> dict[str, list[dict[str, Any]]]:
    """:func:`member_rows` of every task, by secure_id (``ecosys task list --json``)."""
    by_id = {d.device_id: d for d in list_devices(store)}
    limit = away_after(store)
    with store.session() as session:
        out = {}
        for task in list_tasks(store):
            ref = find_task(session, task.secure_id)
            if ref is not None:
                out[task.secure_id] = member_rows(session, ref.id, me, by_id, limit)
        return out
