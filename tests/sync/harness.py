"""In-process devices for sync tests: each has its own real folder, SQLite store and object cache, and
meetings pass real engine messages (deltas included) between them, with no network."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ecosys_core.errors import ChangeRefused
from ecosys_core.settings import HomeLayout
from ecosys_core.store import Store, open_store
from ecosys_core.store.devices import link_task_device, upsert_device
from ecosys_core.store.tasks import add_task
from ecosys_core.sync.engine import SyncEngine
from ecosys_core.sync.messages import Message
from ecosys_core.sync.objects import ObjectStore
from ecosys_core.types import TaskKind

SECURE_ID = "5e" * 16


@dataclass
class Device:
    name: str
    device_id: str
    home: HomeLayout
    root: Path
    store: Store
    engine: SyncEngine

    def write(self, rel: str, data: bytes) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def delete(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def scan(self):
        return self.engine.scan(SECURE_ID)

    def files(self) -> dict[str, bytes]:
        out = {}
        for folder, _, names in os.walk(self.root):
            for name in names:
                path = Path(folder) / name
                out[path.relative_to(self.root).as_posix()] = path.read_bytes()
        return out

    def close(self) -> None:
        self.store.close()


def make_devices(tmp_path: Path, count: int, *, backup: set[int] = frozenset(), hook=None,
                 task: Callable[[int, Path], dict] | None = None) -> list[Device]:
    """``count`` devices sharing one task, every pair linked. ``task(i, root)`` gives ``add_task``
    arguments that replace the plain folder task's on device ``i`` (an app task, places…)."""
    ids = [hashlib.sha256(f"device-{i}".encode()).hexdigest() for i in range(count)]
    created = datetime(2026, 1, 1, tzinfo=timezone.utc)
    devices = []
    for i, device_id in enumerate(ids):
        home = HomeLayout(tmp_path / f"home{i}").ensure()
        root = tmp_path / f"root{i}"
        root.mkdir()
        store = open_store(home.database)
        add_task(store, **{"name": "shared", "root": root, "kind": TaskKind.FOLDER, "secure_id": SECURE_ID,
                           "backup_mode": i in backup, "created_at": created, **(task(i, root) if task else {})})
        for other in ids:
            if other != device_id:
                upsert_device(store, other, name=other[:6], linked=True)
                link_task_device(store, SECURE_ID, other)
        engine = SyncEngine(store, ObjectStore(home.objects), device_id, hook, home.staging)
        devices.append(Device(f"d{i}", device_id, home, root, store, engine))
    return devices


def reopen_devices(tmp_path: Path, count: int) -> list[Device]:
    """The devices ``make_devices`` created under ``tmp_path``, opened again (as after a restart)."""
    devices = []
    for i in range(count):
        device_id = hashlib.sha256(f"device-{i}".encode()).hexdigest()
        home = HomeLayout(tmp_path / f"home{i}")
        store = open_store(home.database)
        engine = SyncEngine(store, ObjectStore(home.objects), device_id, staging=home.staging)
        devices.append(Device(f"d{i}", device_id, home, tmp_path / f"root{i}", store, engine))
    return devices


def exchange_lists(a: Device, b: Device) -> None:
    """Member lists both ways, as sessions send them first, again while one taken changes the other's."""
    for _ in range(3):
        changed = False
        for src, dst in ((a, b), (b, a)):
            for message in src.engine.membership_for(dst.device_id):
                try:
                    changed = dst.engine.members.receive(src.device_id, message) or changed
                except ChangeRefused:
                    pass
        if not changed:
            return


def meet(a: Device, b: Device, max_messages: int = 100_000) -> int:
    """Let ``a`` and ``b`` exchange until neither has anything more for the other; return messages sent."""
    sent = 0
    exchange_lists(a, b)
    for _ in range(20):
        queue: list[tuple[Device, Device, Message]] = [(a, b, m) for m in a.engine.outgoing(b.device_id)]
        queue += [(b, a, m) for m in b.engine.outgoing(a.device_id)]
        if not queue:
            return sent
        while queue:
            src, dst, message = queue.pop(0)
            sent += 1
            assert sent < max_messages, "meeting does not converge"
            for answer in dst.engine.receive(src.device_id, message):
                queue.append((dst, src, answer))
    raise AssertionError("devices keep finding new things to say")


def as_received(messages: list, sender: str) -> list:
    """Messages as a receiving session hands them over: through the real frame codec, with each small
    delta read inline by the sender (``inline_delta``) and carried as the frame's payload."""
    from ecosys_core.net.codec import header_message, inline_delta, message_header

    return [header_message(*message_header(inline_delta(m), sender)) for m in messages]
