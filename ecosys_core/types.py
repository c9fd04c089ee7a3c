"""Small value types passed to hooks and between layers. They import nothing else of Ecosys."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Mapping


class TaskKind(str, enum.Enum):
    """What a sync task syncs: a plain folder, a grapin's app data, or a tout-en-un app's data folder."""

    FOLDER = "folder"
    GRAPIN = "grapin"
    APP = "app"


@dataclass(frozen=True)
class TaskPart:
    """One place a task syncs when it has several (an app's folders and files): what lies at ``path`` is
    the task's folder ``name`` (a file: the task's file ``name``), whatever the place on each device."""

    name: str
    path: Path
    file: bool = False


@dataclass(frozen=True)
class TaskLayout:
    """Where an app's task lives on this machine: one folder (``root``), or several ``parts`` (``root``
    None); ``patterns`` are the ignore patterns it starts with (its grapin's include and exclude)."""

    root: Path | None
    parts: tuple[TaskPart, ...] = ()
    patterns: tuple[str, ...] = ()
    lock_files: tuple[str, ...] = ()  # present while the app runs (patterns relative to each place)
    process_names: tuple[str, ...] = ()  # the app's processes


@dataclass(frozen=True)
class TaskInfo:
    """A read-only snapshot of a sync task, as hooks see it.

    A task syncs the folder ``root``, or, when it has ``parts``, those places (``root`` is then a folder
    of Ecosys's own holding only the task's ``.ecosysignore``). ``patterns`` are ignore patterns the task
    was made with (a grapin's include and exclude lists); ``lock_files`` and ``process_names`` tell when
    its app runs (a grapin's ``LockFiles`` and ``ProcessNames``)."""

    name: str
    secure_id: str
    root: Path
    kind: TaskKind
    backup_mode: bool
    created_at: datetime
    source: str | None = None  # grapin or app name for those kinds
    parts: tuple[TaskPart, ...] = ()
    patterns: tuple[str, ...] = ()
    lock_files: tuple[str, ...] = ()  # while one is there, or one of ``process_names`` runs, the app runs:
    process_names: tuple[str, ...] = ()  # its data waits

    @property
    def places(self) -> list[Path]:
        """Every folder or file this task syncs on this device."""
        return [part.path for part in self.parts] if self.parts else [self.root]


@dataclass(frozen=True)
class TaskOffer:
    """A sync task a linked device offers to share with this one (before CHOOSELINKPATH is answered)."""

    name: str
    secure_id: str
    kind: TaskKind
    source: str | None
    created_at: datetime
    device_id: str


@dataclass(frozen=True)
class ResolveContext:
    """What placeholder resolvers may use: the user's home, user name and this machine's platform, and
    ``folders``: the known folders the OS or environment set (``XDG_CONFIG_HOME``, ``APPDATA``,
    ``DOCUMENTS``…); one absent there is its usual place under ``home``."""

    home: Path
    username: str
    platform: str
    folders: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class PlaceholderRequest:
    """One path component holding ``%name%`` to resolve, under the already resolved ``parent`` folder."""

    component: str
    parent: Path
    context: ResolveContext
    is_last: bool


@dataclass(frozen=True)
class Placeholder:
    """A ``%name%`` token. ``resolve`` returns ``request.component`` with the token replaced, or raises
    :class:`ecosys_core.errors.PathNotResolved` saying why. Tokens with a lower ``order`` are replaced first,
    so value placeholders (order 0, like ``%username%``) are fixed before folder walkers (order 10) look."""

    name: str
    resolve: Callable[[PlaceholderRequest], str]
    description: str = ""
    order: int = 0
