"""The conflict copies of a task (``name.sync-conflict-<when>-<device>[-<tag>].ext``, see
``rules.conflict_name``): listed beside the version that stayed at the path, and resolved by keeping one.
Keeping the copy moves it onto the path (one rename, atomic); keeping the current version removes the
copy; either is then indexed and sent like any local edit, so every device ends with the same choice."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from sqlalchemy import func, select

from ..errors import EcosysError, NotFound
from ..store import Store
from ..store.index import Entry, find_task, get_entry
from ..store.tables import FileEntry
from .places import CONFLICT_MARK

_COPY = re.compile(r"^(?P<stem>.*)\.sync-conflict-(?P<when>\d{8}-\d{6})-(?P<device>[0-9A-Z]+)(?:-[0-9A-F]+)?$")


@dataclass(frozen=True)
class Version:
    """One side of a conflict as the index knows it."""

    path: str
    size: int
    modified_ns: int
    modified_by: str  # short id of the device that made it


@dataclass(frozen=True)
class Conflict:
    """A conflict copy and the version at its original path (None when that path is gone)."""

    copy: Version
    current: Version | None


def original_path(copy: str) -> str | None:
    """The path a conflict copy was made for, or None when ``copy`` is not a conflict copy's name."""
    p = PurePosixPath(copy)
    name = p.name
    for suffix in ((p.suffix,) if p.suffix else ()) + ("",):
        base = name[: -len(suffix)] if suffix else name
        match = _COPY.match(base)
        if match:
            original = match.group("stem") + suffix
            return str(p.with_name(original)) if str(p.parent) != "." else original
    return None


def _version(entry: FileEntry | Entry) -> Version:
    return Version(entry.path, entry.size, entry.modified_ns, entry.modified_by)


def list_conflicts(store: Store, secure_id: str, offset: int = 0, limit: int = 100) -> tuple[int, list[Conflict]]:
    """(how many, one page of them, newest first) of the task's conflict copies."""
    with store.session() as session:
        task = find_task(session, secure_id)
        if task is None:
            raise NotFound(f"no sync task with secure_id {secure_id}")
        where = (FileEntry.task_id == task.id, FileEntry.deleted.is_(False),
                 FileEntry.path.contains(CONFLICT_MARK, autoescape=True))
        total = session.scalar(select(func.count()).where(*where)) or 0
        rows = session.scalars(select(FileEntry).where(*where).order_by(FileEntry.modified_ns.desc(), FileEntry.path)
                               .offset(max(offset, 0)).limit(max(min(limit, 500), 1))).all()
        out = []
        for row in rows:
            original = original_path(row.path)
            if original is None:
                continue
            current = get_entry(session, task.id, original)
            out.append(Conflict(_version(row), None if current is None or current.deleted else _version(current)))
        return total, out


def keep(copy_file: "os.PathLike[str] | str", original_file: "os.PathLike[str] | str", which: str) -> None:
    """Keep ``which`` ("copy" or "current") of a conflict on disk: the copy renamed onto the original
    (atomic), or the copy removed. EcosysError when ``which`` is neither or the copy is gone."""
    if which not in ("copy", "current"):
        raise EcosysError("keep either 'copy' or 'current'")
    if not os.path.lexists(copy_file):
        raise NotFound("that conflict copy is gone (resolved on another device?)")
    if which == "copy":
        os.replace(copy_file, original_file)
    else:
        os.unlink(copy_file)
