"""Sync tasks in the store: add, list, find, remove. Removing a task never touches the user's files."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from ..errors import AlreadyExists, EcosysError, NotFound
from ..types import TaskInfo, TaskKind, TaskPart
from .database import Store
from .tables import SyncTask, utcnow


def new_secure_id() -> str:
    """Return a fresh 128-bit secure_id (32 hex digits): unique, not secret (seed: 'not because it is secure')."""
    return secrets.token_hex(16)


def task_info(row: SyncTask) -> TaskInfo:
    """Snapshot a task row for hooks and callers outside a session."""
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=timezone.utc)
    layout = json.loads(row.layout) if row.layout else {}
    return TaskInfo(
        name=row.name,
        secure_id=row.secure_id,
        root=Path(row.root),
        kind=TaskKind(row.kind),
        backup_mode=row.backup_mode,
        created_at=created,
        source=row.source,
        parts=tuple(TaskPart(p["name"], Path(p["path"]), bool(p["file"])) for p in layout.get("parts", ())),
        patterns=tuple(layout.get("patterns", ())),
        lock_files=tuple(layout.get("lock_files", ())),
        process_names=tuple(layout.get("process_names", ())),
    )


def _layout(parts: tuple[TaskPart, ...], patterns: tuple[str, ...], lock_files: tuple[str, ...] = (),
            process_names: tuple[str, ...] = ()) -> str | None:
    if not (parts or patterns or lock_files or process_names):
        return None
    return json.dumps({"parts": [{"name": p.name, "path": str(p.path), "file": p.file} for p in parts],
                       "patterns": list(patterns), "lock_files": list(lock_files),
                       "process_names": list(process_names)})


def parts_root(home: Path, secure_id: str) -> Path:
    """The folder of Ecosys's own that stands for the root of a task of several places: it holds only
    that task's ``.ecosysignore``."""
    return home / "tasks" / secure_id


def _places(row: SyncTask) -> list[Path]:
    return task_info(row).places


def _overlaps(a: Path, b: Path) -> bool:
    a_s, b_s = os.path.normcase(str(a)), os.path.normcase(str(b))
    return a_s == b_s or a_s.startswith(b_s.rstrip(os.sep) + os.sep) or b_s.startswith(a_s.rstrip(os.sep) + os.sep)


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_outside_home(root: Path, home: Path, kind: TaskKind) -> None:
    """Refuse (EcosysError) a task folder that is ECOSYS_HOME, holds it, or lies inside it: the home holds
    the database and the device's private key, which must never be synced. The one exception is an app
    task's data folder, which lives in ``ECOSYS_HOME/apps/<app>/`` by design."""
    r = os.path.normcase(os.path.realpath(root))
    h = os.path.normcase(os.path.realpath(home))
    if _inside(h, r):
        raise EcosysError(f"{root} holds Ecosys's own folder ({home}), with its database and private key, "
                          "which must never be synced: choose a folder that does not contain it")
    apps = os.path.join(h, "apps")
    if _inside(r, h) and not (kind is TaskKind.APP and _inside(r, apps) and r != apps):
        raise EcosysError(f"{root} is inside Ecosys's own folder ({home}): choose a folder outside it")


def check_new_task_root(store: Store, root: Path, kind: TaskKind = TaskKind.FOLDER) -> Path:
    """The absolute folder ``root`` resolves to, if a new task may use it: an existing folder or one that
    can be created, outside ECOSYS_HOME and outside every task's folder. EcosysError (AlreadyExists for
    an overlap) says why not; nothing is created."""
    if not root.is_absolute():
        raise EcosysError(f"{root} is not an absolute folder path")
    real = Path(os.path.realpath(root))
    check_outside_home(real, store.home, kind)
    if real.exists() and not real.is_dir():
        raise EcosysError(f"{root} is a file, not a folder")
    existing = next(p for p in (real, *real.parents) if p.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise EcosysError(f"{root} cannot be created here ({existing} is not a writable folder)")
    with store.session() as session:
        _check_overlaps(session, [real])
    return real


def _check_overlaps(session: Session, places: list[Path]) -> None:
    for other in session.scalars(select(SyncTask)):
        for mine in places:
            for theirs in _places(other):
                if _overlaps(mine, theirs):
                    raise AlreadyExists(f"{mine} overlaps the folder of task {other.name!r} ({theirs})")


def add_task(
    store: Store,
    *,
    name: str,
    root: Path,
    kind: TaskKind,
    source: str | None = None,
    backup_mode: bool = False,
    secure_id: str | None = None,
    created_at: datetime | None = None,
    parts: tuple[TaskPart, ...] = (),
    patterns: tuple[str, ...] = (),
    lock_files: tuple[str, ...] = (),
    process_names: tuple[str, ...] = (),
) -> TaskInfo:
    """Register a sync task over folder ``root`` (absolute, existing), or over ``parts`` (absolute folders
    and files; ``root`` is then ignored and :func:`parts_root` made); raise if the name is taken or a
    place is, contains or lies inside another task's. ``patterns``: ignore patterns it starts with;
    ``lock_files`` and ``process_names``: how to tell its app runs."""
    name = name.strip()
    if not name:
        raise EcosysError("a task name must not be empty")
    secure_id = secure_id or new_secure_id()
    if parts:
        parts = tuple(TaskPart(p.name, Path(os.path.realpath(p.path)), p.file) for p in parts)
        for part in parts:
            check_outside_home(part.path, store.home, kind)
        root = parts_root(store.home, secure_id)
        root.mkdir(parents=True, exist_ok=True)
    else:
        root = Path(os.path.realpath(root))
        check_outside_home(root, store.home, kind)
        if not root.is_dir():
            raise NotFound(f"folder {root} does not exist")
    with store.session() as session:
        if session.scalar(select(SyncTask).where(SyncTask.name == name)):
            raise AlreadyExists(f"a task called {name!r} already exists")
        _check_overlaps(session, [p.path for p in parts] or [root])
        row = SyncTask(
            name=name,
            secure_id=secure_id,
            root=str(root),
            kind=kind.value,
            source=source,
            backup_mode=backup_mode,
            created_at=created_at or utcnow(),
            layout=_layout(parts, tuple(patterns), tuple(lock_files), tuple(process_names)),
        )
        session.add(row)
        session.flush()
        store.touch()
        return task_info(row)


def list_tasks(store: Store) -> list[TaskInfo]:
    """Return every task, by name."""
    with store.session() as session:
        return [task_info(row) for row in session.scalars(select(SyncTask).order_by(SyncTask.name))]


def _find(session: Session, name_or_secure_id: str) -> SyncTask:
    row = session.scalar(
        select(SyncTask).where((SyncTask.name == name_or_secure_id) | (SyncTask.secure_id == name_or_secure_id))
    )
    if row is None:
        raise NotFound(f"no sync task called {name_or_secure_id!r} (see 'ecosys task list')")
    return row


def get_task(store: Store, name_or_secure_id: str) -> TaskInfo:
    """Return the task with that name or secure_id; raise NotFound."""
    with store.session() as session:
        return task_info(_find(session, name_or_secure_id))


def remove_task(store: Store, name_or_secure_id: str) -> TaskInfo:
    """Forget a task, its index, links and pending events; the folder and its files stay untouched.
    The members it was linked with are told at the next meeting that this device left (a departure
    record, kept until each was told), so they stop keeping changes for it."""
    with store.session() as session:
        row = _find(session, name_or_secure_id)
        info = task_info(row)
        _record_departure(session, store, row)
        session.delete(row)
        store.touch()
    if info.parts:  # Ecosys's own folder standing for the task (its .ecosysignore), not the user's files
        shutil.rmtree(parts_root(store.home, info.secure_id), ignore_errors=True)
    return info


def _record_departure(session: Session, store: Store, row: SyncTask) -> None:
    from .members import ME, Member, now_s, read_members, wire_record
    from .settings_kv import DEPARTURES
    from .tables import Device, Setting

    records = {d: s.member for d, s in read_members(session, row.id).items()}
    # every device of the list linked here: the members, and those removed here that may not know yet
    linked = sorted(session.scalars(select(Device.device_id).where(Device.device_id.in_([d for d in records if d != ME]),
                                                                   Device.linked.is_(True))))
    if not linked:
        return
    mine = records.get(ME)
    listed = [wire_record(m) for d, m in records.items() if d != ME]
    listed.append(wire_record(Member(ME, (mine.seq + 1) if mine else 1, True, ME, now_s())))
    setting = session.get(Setting, DEPARTURES)
    departures = json.loads(setting.value) if setting else {}
    departures[row.secure_id] = {"members": listed, "to": linked}
    session.merge(Setting(key=DEPARTURES, value=json.dumps(departures)))
