"""Check paths that come from outside (peers, archives, JSON) before they touch the disk.

A relative path is kept as ``/``-separated text and must be portable: no ``..``, no absolute or drive
path, no NUL or backslash, no empty component. ``join_inside`` also refuses symlinks escaping a root.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import UnsafePath

_DRIVE_RE = re.compile(r"^[A-Za-z]:")
# Names Windows refuses; a file called so would not sync to a Windows device.
_WINDOWS_RESERVED = re.compile(r"^(con|prn|aux|nul|com[1-9]|lpt[1-9])(\..*)?$", re.IGNORECASE)


def check_relative_path(path: str) -> str:
    """Return ``path`` if it is a safe ``/``-separated relative path, else raise UnsafePath saying why."""
    if not path:
        raise UnsafePath("empty path")
    if "\x00" in path:
        raise UnsafePath("NUL character in path")
    if "\\" in path:
        raise UnsafePath(f"backslash in path {path!r}")
    if path.startswith("/") or _DRIVE_RE.match(path):
        raise UnsafePath(f"absolute path {path!r}")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"path component {part!r} not allowed in {path!r}")
    return path


def join_inside(root: Path, relative: str) -> Path:
    """Return ``root/relative`` after checking ``relative`` and that no existing symlink leads out of root."""
    return InsideChecker().join(root, relative)


class InsideChecker:
    """:func:`join_inside` for many paths checked within a short span (a batch of received files): the
    real path of each folder is resolved once and remembered, so a path costs one ``lstat`` of its own
    instead of one per component of root and path. Use a new checker for each span: what it remembers
    is only as true as the moment it looked."""

    def __init__(self) -> None:
        self._real: dict[str, str] = {}  # folder → its real path
        self._joined: dict[tuple[str, str], Path] = {}  # (root, relative) → the checked path

    def _realpath(self, folder: str) -> str:
        real = self._real.get(folder)
        if real is None:
            real = self._real[folder] = os.path.realpath(folder)
        return real

    def join(self, root: Path, relative: str) -> Path:
        """As :func:`join_inside` (a path asked again is answered from memory: a received file is
        checked when its content is staged and again when it is applied)."""
        key = (os.fspath(root), relative)
        joined = self._joined.get(key)
        if joined is None:
            joined = self._joined[key] = self._join(key[0], relative)
        return joined

    def _join(self, root: str, relative: str) -> Path:
        parts = check_relative_path(relative).split("/")
        target = os.path.join(root, *parts)
        real_root = self._realpath(root)
        if os.path.islink(target):
            real_target = os.path.realpath(target)
        else:
            parent, name = os.path.split(target)
            real_target = os.path.join(self._realpath(parent), name)
        if not _is_within(real_target, real_root):
            raise UnsafePath(f"{relative!r} leads outside {root} through a symbolic link")
        return Path(target)


def _is_within(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or below it (both real, absolute paths)."""
    path, folder = os.path.normcase(path), os.path.normcase(folder)  # Windows compares case-blind
    prefix = folder if folder.endswith(os.sep) else folder + os.sep
    return path == folder or path.startswith(prefix)


def portable_name(name: str) -> str:
    """Return a file name safe on Linux, Windows and Android: forbidden characters become '_'."""
    cleaned = re.sub(r'[<>:"/\\|?*\x00-\x1f]', "_", name).rstrip(" .")
    if not cleaned or cleaned in (".", ".."):
        cleaned = "_"
    if _WINDOWS_RESERVED.match(cleaned):
        cleaned = "_" + cleaned
    return cleaned[:255]
