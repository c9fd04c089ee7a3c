"""Turn a grapin's ``/``-separated JSON path into a real folder on this machine.

Anchors: ``~`` is the user's home, a leading ``/`` the filesystem root, ``C:`` a drive (Windows only).
Each component holding ``%name%`` tokens is handed to the registered placeholder resolvers, lowest
``order`` first. The result is a native :class:`Path` (the OS separator).
"""

from __future__ import annotations

import getpass
import os
import re
import sys
from pathlib import Path
from typing import Mapping

from .errors import PathNotResolved
from .models import PLACEHOLDER_RE, GrapinConfig, is_anchored
from .types import Placeholder, PlaceholderRequest, ResolveContext

_DRIVE_RE = re.compile(r"^[A-Za-z]:$")


def current_platform() -> str:
    """Return this machine's platform in the seed's vocabulary: Linux, Win32, Android or Darwin."""
    if hasattr(sys, "getandroidapilevel") or "ANDROID_ROOT" in os.environ:
        return "Android"
    if sys.platform.startswith("win"):
        return "Win32"
    if sys.platform == "darwin":
        return "Darwin"
    return "Linux"


def current_context() -> ResolveContext:
    """Return the resolve context of the running user on this machine."""
    return ResolveContext(home=Path.home(), username=getpass.getuser(), platform=current_platform())


def natural_version_key(text: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that orders ``1.9 < 1.10 < 2.0``: digit runs compare as numbers, other runs as text."""
    key = []
    for piece in re.split(r"(\d+)", text):
        if not piece:
            continue
        key.append((1, int(piece), "") if piece.isdigit() else (0, 0, piece))
    return tuple(key)


def matching_children(request: PlaceholderRequest, name: str) -> list[tuple[str, str]]:
    """List ``(child name, value of %name%)`` for children of ``request.parent`` matching the component.

    Other placeholders still in the component match anything. Non-final components only match folders.
    Hidden entries (leading dot) are skipped unless the component itself starts with a dot.
    """
    pattern = ""
    seen = False
    for i, part in enumerate(PLACEHOLDER_RE.split(request.component)):
        if i % 2 == 0:
            pattern += re.escape(part)
        elif part == name:
            pattern += "(?P=value)" if seen else "(?P<value>.+?)"
            seen = True
        else:
            pattern += ".+?"
    regex = re.compile(pattern + r"\Z", re.DOTALL)
    if not request.parent.is_dir():
        raise PathNotResolved(f"folder {request.parent} does not exist")
    found = []
    for entry in os.scandir(request.parent):
        if entry.name.startswith(".") and not request.component.startswith("."):
            continue
        if not request.is_last and not entry.is_dir():
            continue
        match = regex.match(entry.name)
        if match:
            found.append((entry.name, match.group("value")))
    if not found:
        raise PathNotResolved(f"no entry of {request.parent} matches {request.component!r}")
    return found


def resolve_json_path(
    path: str, placeholders: Mapping[str, Placeholder], context: ResolveContext
) -> Path:
    """Resolve ``path`` (already validated) against ``context`` with ``placeholders``; raise PathNotResolved."""
    if not is_anchored(path):
        raise PathNotResolved(f"{path!r} is not anchored at '~/', '/' or a drive letter")
    parts = path.split("/")
    first = parts[0]
    if first == "~":
        current, rest = context.home, parts[1:]
    elif first == "":
        current, rest = Path(context.home.anchor or "/"), parts[1:]
    elif _DRIVE_RE.match(first):
        if context.platform != "Win32":
            raise PathNotResolved(f"{path!r} names a drive letter, which only exists on Win32")
        current, rest = Path(first + "\\"), parts[1:]
    else:  # pragma: no cover - is_anchored() covers every case above
        raise PathNotResolved(f"{path!r} is not anchored")
    rest = [part for part in rest if part not in ("", ".")]
    for index, component in enumerate(rest):
        component = _resolve_component(component, current, index == len(rest) - 1, placeholders, context)
        current = current / component
    return current


def _resolve_component(
    component: str, parent: Path, is_last: bool, placeholders: Mapping[str, Placeholder], context: ResolveContext
) -> str:
    # Bounded: every round must remove at least one token, else we stop with a clear error.
    for _ in range(32):
        names = PLACEHOLDER_RE.findall(component)
        if not names:
            return component
        unknown = [n for n in names if n not in placeholders]
        if unknown:
            raise PathNotResolved(f"unknown placeholder %{unknown[0]}%")
        name = min(names, key=lambda n: (placeholders[n].order, names.index(n)))
        request = PlaceholderRequest(component=component, parent=parent, context=context, is_last=is_last)
        replaced = placeholders[name].resolve(request)
        if f"%{name}%" in replaced:
            raise PathNotResolved(f"the resolver of %{name}% left it in {replaced!r}")
        component = replaced
    raise PathNotResolved(f"too many placeholders in {component!r}")


def resolve_grapin(
    grapin: GrapinConfig, placeholders: Mapping[str, Placeholder], context: ResolveContext | None = None
) -> Path:
    """Return where ``grapin``'s data lives on this machine; raise PathNotResolved saying why it does not."""
    context = context or current_context()
    if context.platform not in grapin.supported_platforms:
        raise PathNotResolved(
            f"{grapin.app_name} supports {', '.join(grapin.supported_platforms)}, not {context.platform}"
        )
    return resolve_json_path(grapin.path_for(context.platform), placeholders, context)


