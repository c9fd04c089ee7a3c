"""Grapin paths as written in JSON (``/``-separated, ``%name%`` placeholders, anchors such as ``~`` or
``%APPDATA%``): reading and checking them without the models, so that resolving a path does not load
pydantic (a daemon that never reads a grapin file keeps 7 MiB less, issue 17)."""

from __future__ import annotations

import re
from typing import Iterable

PLACEHOLDER_RE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")
DRIVE_RE = re.compile(r"^[A-Za-z]:$")
# Folders a path may start at (written %NAME%/…), found from the environment and the OS's known folders
# (resolve.anchor_folder); the format 2 spelling of "where this OS keeps app data".
ANCHORS: frozenset[str] = frozenset({"HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "APPDATA",
                                     "LOCALAPPDATA", "LOCALAPPDATALOW", "DOCUMENTS"})
_GLOB_CHARS = frozenset("*?[")


def placeholders_in(text: str) -> list[str]:
    """Return the placeholder names used in ``text``, in order of appearance."""
    return PLACEHOLDER_RE.findall(text)


def is_anchored(path: str) -> bool:
    """True when a ``/``-separated path starts at a root: ``~``, ``/``, a drive letter like ``C:`` or an
    anchor folder like ``%XDG_CONFIG_HOME%``."""
    first = path.split("/", 1)[0]
    return path.startswith("/") or first == "~" or bool(DRIVE_RE.match(first)) or anchor_of(path) is not None


def anchor_of(path: str) -> str | None:
    """The anchor name ``path`` starts at (``%APPDATA%/…`` → ``APPDATA``), or None."""
    first = path.split("/", 1)[0]
    if len(first) > 2 and first[0] == first[-1] == "%" and first[1:-1] in ANCHORS:
        return first[1:-1]
    return None


def has_glob(component: str) -> bool:
    """True when a path component holds a glob character (``*``, ``?``, ``[``)."""
    return not _GLOB_CHARS.isdisjoint(component)


def check_json_path(path: str, *, needs_format: bool, known: Iterable[str], anchored: bool | None) -> str:
    """Validate a path written in a grapin or app JSON and return it unchanged.

    ``anchored`` True requires a root (``~/``, ``/``, ``C:/``), False forbids one, None allows both.
    Raises ValueError with a message a person understands.
    """
    if not path:
        raise ValueError("must not be empty")
    if "\\" in path:
        raise ValueError(f"use '/' as the path separator, not '\\' (in {path!r})")
    if "\x00" in path:
        raise ValueError("must not contain a NUL character")
    if anchored is True and not is_anchored(path):
        raise ValueError(f"must start with '~/', '/', a drive letter like 'C:/' or a known folder "
                         f"({', '.join('%' + a + '%' for a in sorted(ANCHORS))}) (got {path!r})")
    if anchored is False and is_anchored(path):
        raise ValueError(f"must be relative to the app's root, not absolute (got {path!r})")
    parts = path.split("/")
    body = parts[1:] if path.startswith("/") else parts
    for part in body:
        if part == "..":
            raise ValueError(f"path component '..' is not allowed (in {path!r})")
        if part == "" and part is not body[-1]:
            raise ValueError(f"empty path component ('//') in {path!r}")
    known_set = set(known)
    names = placeholders_in(path)
    if anchor_of(path) is not None:
        names = names[1:]
    for name in names:
        if not needs_format:
            raise ValueError(f"uses %{name}% but NeedsFormat is false")
        if name not in known_set:
            raise ValueError(f"unknown placeholder %{name}% (known: {', '.join('%' + k + '%' for k in sorted(known_set))})")
    return path
