"""Where a task's relative paths are on this device: one folder, or several places (an app's folders and
single files) each standing for a top-level name of the task.

A task of several places maps ``NAME/rest`` to ``rest`` inside the folder part ``NAME``, and ``NAME`` to
the file part ``NAME``. A file part's conflict copies live beside the file: ``vimrc.sync-conflict-…`` is
``~/.vimrc.sync-conflict-…``, so both versions of a concurrent edit are kept as in any folder. Every
device and platform resolves the same names to its own places, so ``~/.vimrc`` on Linux and ``~/_vimrc``
on Windows are the same file of the task.
"""

from __future__ import annotations

import os
import stat as stat_mod
from pathlib import Path

from ..errors import RootUnavailable, UnsafePath
from ..safe_paths import InsideChecker, check_relative_path
from ..types import TaskInfo, TaskPart
from .scanner import TreeWalk, walk_folder, walk_tree

CONFLICT_MARK = ".sync-conflict-"


def _split_name(name: str) -> tuple[str, str]:
    """``(stem, suffix)`` as conflict names split a file name (``.vimrc`` has no suffix)."""
    stem, dot, suffix = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + suffix


class Places:
    """The places of a task: walked by scans, looked up for every path read or written."""

    def __init__(self, root: Path, parts: tuple[TaskPart, ...] = ()) -> None:
        self.root = root
        self.parts = {part.name: part for part in parts}

    @classmethod
    def of(cls, info: TaskInfo) -> "Places":
        """The places of task ``info``."""
        return cls(info.root, info.parts)

    @property
    def several(self) -> bool:
        return bool(self.parts)

    def folders(self) -> list[Path]:
        """The folders to watch: the root, or each folder part and the folder holding each file part."""
        if not self.parts:
            return [self.root]
        return list(dict.fromkeys(p.path.parent if p.file else p.path for p in self.parts.values()))

    # -- paths ----------------------------------------------------------------------------------
    def _part_and_rest(self, rel: str) -> tuple[TaskPart, str]:
        first, _, rest = rel.partition("/")
        part = self.parts.get(first)
        if part is not None and part.file != bool(rest):
            return part, rest
        for candidate in self.parts.values():  # a file part's conflict copy
            stem, suffix = _split_name(candidate.name)
            if candidate.file and not rest and first.startswith(stem + CONFLICT_MARK) and first.endswith(suffix):
                return candidate, first
        raise UnsafePath(f"{rel!r} is in none of the task's places ({', '.join(sorted(self.parts))})")

    def path(self, rel: str) -> Path:
        """Where ``rel`` (a path of the task, from its index) is on the disk; UnsafePath when it names no
        place of the task."""
        if not self.parts:
            return self.root.joinpath(*rel.split("/"))
        part, rest = self._part_and_rest(rel)
        if not part.file:
            return part.path.joinpath(*rest.split("/"))
        if not rest:
            return part.path
        stem, suffix = _split_name(part.name)
        disk_stem, disk_suffix = _split_name(part.path.name)
        return part.path.with_name(disk_stem + rest[len(stem):len(rest) - len(suffix)] + disk_suffix)

    def locate(self, rel: str, checker: InsideChecker | None = None) -> Path:
        """:meth:`path` for a path that came from elsewhere (a peer): checked as portable, and never
        through a link out of its place. UnsafePath says why not."""
        checker = checker or InsideChecker()
        if not self.parts:
            return checker.join(self.root, rel)
        check_relative_path(rel)
        part, rest = self._part_and_rest(rel)
        if not part.file:
            return checker.join(part.path, rest)
        target = self.path(rel)
        if os.path.islink(target):
            raise UnsafePath(f"{target} is a link: Ecosys does not write through it")
        return target

    def place_of(self, rel: str) -> Path:
        """The folder that holds ``rel``'s place: folders above a deleted file are removed up to it."""
        if not self.parts:
            return self.root
        part, _ = self._part_and_rest(rel)
        return part.path.parent if part.file else part.path

    # -- walks ----------------------------------------------------------------------------------
    def walk(self, racy_after: int | None = None) -> TreeWalk:
        """Every file of the task with its size and mtime, as :func:`walk_tree` gives them. A folder part
        that cannot be listed is unreadable (its files are kept), like a folder inside a task."""
        if not self.parts:
            return walk_tree(self.root, racy_after)
        out = TreeWalk({})
        for part in self.parts.values():
            if part.file:
                self._walk_file(part, out, racy_after)
                continue
            try:
                walk = walk_tree(part.path, racy_after)
            except RootUnavailable:
                out.unreadable.append(part.name + "/")
                continue
            _merge(out, walk, part.name + "/")
        if len(out.unreadable) == len(self.parts):
            raise RootUnavailable(f"none of the places of this task can be read ({', '.join(sorted(self.parts))})")
        return out

    def walk_under(self, under: str, racy_after: int) -> TreeWalk:
        """The files below folder ``under`` of the task, as a whole walk would see them."""
        if not self.parts:
            return walk_folder(self.root, under, racy_after)
        first, _, rest = under.partition("/")
        part = self.parts.get(first)
        if part is None or part.file:
            return TreeWalk({})
        if not rest:
            try:
                walk = walk_tree(part.path, racy_after)
            except RootUnavailable:
                return TreeWalk({}, unreadable=[first + "/"])
            out = TreeWalk({})
            _merge(out, walk, first + "/")
            return out
        try:
            walk = walk_folder(part.path, rest, racy_after)
        except RootUnavailable:
            return TreeWalk({}, unreadable=[first + "/"])
        out = TreeWalk({})
        _merge(out, walk, first + "/")
        return out

    def _walk_file(self, part: TaskPart, out: TreeWalk, racy_after: int | None) -> None:
        try:
            st = os.lstat(part.path)
        except FileNotFoundError:
            st = None
        except OSError:
            out.unreadable.append(part.name)
            return
        if st is not None and stat_mod.S_ISREG(st.st_mode):
            out.files[part.name] = (st.st_size, st.st_mtime_ns)
            if racy_after is not None and st.st_mtime_ns > racy_after:
                out.racy.append(part.name)
        disk_stem, disk_suffix = _split_name(part.path.name)
        stem, suffix = _split_name(part.name)
        try:
            with os.scandir(part.path.parent) as listing:
                entries = list(listing)
        except OSError:
            return
        for entry in entries:
            name = entry.name
            if not (name.startswith(disk_stem + CONFLICT_MARK) and name.endswith(disk_suffix)):
                continue
            try:
                est = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat_mod.S_ISREG(est.st_mode):
                rel = stem + name[len(disk_stem):len(name) - len(disk_suffix)] + suffix
                out.files[rel] = (est.st_size, est.st_mtime_ns)
                if racy_after is not None and est.st_mtime_ns > racy_after:
                    out.racy.append(rel)

    def available(self) -> None:
        """Raise RootUnavailable when the task's folder (or every place of it) is missing."""
        if not self.parts:
            if not self.root.is_dir():
                raise RootUnavailable(f"cannot read the folder {self.root}: it is missing or not a folder")
            return
        if not any((p.path.parent if p.file else p.path).is_dir() for p in self.parts.values()):
            raise RootUnavailable(f"none of the places of this task exists ({', '.join(sorted(self.parts))})")


def _merge(out: TreeWalk, walk: TreeWalk, prefix: str) -> None:
    out.files.update({prefix + rel: stamp for rel, stamp in walk.files.items()})
    out.temp_files += walk.temp_files
    out.unreadable += [prefix + rel for rel in walk.unreadable]
    out.racy += [prefix + rel for rel in walk.racy]
