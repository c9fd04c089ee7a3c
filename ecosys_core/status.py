"""The status of a device as plain data: this device, the devices it knows, its tasks and what each
linked device is still owed (retard). Built by one function for the daemon (with live connections) and
for the CLI when no daemon runs, so both print the same keys.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import func, select

from .device_ids import readable_id, short_id_text
from .logs import log_file
from .store import Store
from .store.devices import DeviceInfo, list_devices
from .store.index import find_task, pending_counts
from .store.tables import FileEntry
from .store.tasks import list_tasks

Transfers = Callable[[str], list[dict[str, Any]] | None]  # a device's transfers; None when not connected


def device_row(device: DeviceInfo, transfers: list[dict[str, Any]] | None) -> dict[str, Any]:
    """One device as the status and ``ecosys devices --json`` show it."""
    return {"name": device.name, "id": readable_id(device.device_id), "device_id": device.device_id,
            "linked": device.linked,
            "connected": transfers is not None, "address": device.last_address,
            "last_seen": device.last_seen.isoformat() if device.last_seen else None,
            "transfers": transfers or []}


def collect_status(store: Store, *, name: str, readable_id: str, port: int | None = None,
                   live: Transfers = lambda _device_id: None) -> dict[str, Any]:
    """The status: ``device`` (name, readable id, port when a daemon listens, the daemon's log file),
    ``devices`` (see :func:`device_row`) and ``tasks`` (files, bytes and pending events per device name)."""
    devices = [device_row(d, live(d.device_id)) for d in list_devices(store)]
    names = {d["device_id"]: d["name"] or short_id_text(d["device_id"]) for d in devices}
    tasks = []
    with store.session() as session:
        for task in list_tasks(store):
            ref = find_task(session, task.secure_id)
            if ref is None:  # removed meanwhile
                continue
            files, size = session.execute(
                select(func.count(), func.coalesce(func.sum(FileEntry.size), 0))
                .where(FileEntry.task_id == ref.id, FileEntry.deleted.is_(False))
            ).one()
            pending = pending_counts(session, ref.id)
            tasks.append({"name": task.name, "secure_id": task.secure_id, "root": str(task.root),
                          "kind": task.kind.value, "backup_mode": task.backup_mode, "files": files, "bytes": size,
                          "pending": {names.get(d, short_id_text(d)): n for d, n in sorted(pending.items())}})
    device = {"name": name, "id": readable_id, "port": port, "log": str(log_file(store.home / "logs"))}
    return {"device": device, "devices": devices, "tasks": tasks}
