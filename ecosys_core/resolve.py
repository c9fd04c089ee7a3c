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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from .errors import PathNotResolved
from .grapin_paths import ANCHORS, DRIVE_RE, PLACEHOLDER_RE, anchor_of, has_glob, is_anchored
from .types import Placeholder, PlaceholderRequest, ResolveContext

if TYPE_CHECKING:  # the models load pydantic; resolving a path needs neither
    from .models import GrapinConfig, GrapinPath


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
    """Return the resolve context of the running user on this machine (its known folders from the
    environment, and Documents from ``platformdirs``)."""
    folders = {name: os.environ[name] for name in ANCHORS if os.environ.get(name)}
    try:
        import platformdirs

        folders.setdefault("DOCUMENTS", platformdirs.user_documents_dir())
    except Exception:  # a known folder is a convenience: its default below stands in
        pass
    return ResolveContext(home=Path.home(), username=getpass.getuser(), platform=current_platform(), folders=folders)


# Where each anchor is when neither the environment nor the OS says: (platforms, path under home).
_ANCHOR_DEFAULTS: dict[str, tuple[tuple[str, ...], str]] = {
    "HOME": (("Linux", "Darwin", "Win32", "Android"), ""),
    "XDG_CONFIG_HOME": (("Linux", "Darwin"), ".config"),
    "XDG_DATA_HOME": (("Linux", "Darwin"), ".local/share"),
    "XDG_STATE_HOME": (("Linux", "Darwin"), ".local/state"),
    "APPDATA": (("Win32",), "AppData/Roaming"),
    "LOCALAPPDATA": (("Win32",), "AppData/Local"),
    "LOCALAPPDATALOW": (("Win32",), "AppData/LocalLow"),
    "DOCUMENTS": (("Linux", "Darwin", "Win32"), "Documents"),
}


def anchor_folder(name: str, context: ResolveContext) -> Path:
    """The folder anchor ``%name%`` stands for in ``context``; PathNotResolved where it has no meaning
    (``%APPDATA%`` on Linux). The environment's value wins, as apps themselves read it."""
    platforms, default = _ANCHOR_DEFAULTS[name]
    if name == "HOME":
        return context.home
    if context.platform not in platforms:
        raise PathNotResolved(f"%{name}% has no meaning on {context.platform}")
    value = context.folders.get(name)
    if value and os.path.isabs(value):
        return Path(value)
    return context.home.joinpath(*default.split("/"))


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
    anchor = anchor_of(path)
    if anchor is not None:
        current, rest = anchor_folder(anchor, context), parts[1:]
    elif first == "~":
        current, rest = context.home, parts[1:]
    elif first == "":
        current, rest = Path(context.home.anchor or "/"), parts[1:]
    elif DRIVE_RE.match(first):
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
    if grapin.paths:  # format 2: where its first path present here is
        return next(p.path for p in resolve_parts(grapin, placeholders, context) if p.present)
    return resolve_json_path(grapin.path_for(context.platform), placeholders, context)




@dataclass(frozen=True)
class ResolvedPart:
    """One path of a grapin found on this machine: ``path`` is a folder (``file`` False) or the file;
    ``include``/``exclude`` are gitignore-style patterns relative to that folder (a location's glob
    becomes an include pattern on the folder before it)."""

    name: str
    path: Path
    file: bool
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    present: bool = True  # False: not here yet; where the first location puts it (made by what arrives)


def resolve_parts(grapin: GrapinConfig, placeholders: Mapping[str, Placeholder],
                  context: ResolveContext | None = None) -> list[ResolvedPart]:
    """Every path of ``grapin`` found on this machine, each at the first of its locations that exists
    (alternatives are tried in order). Raises PathNotResolved, with each location's reason, when none
    of its paths is here."""
    context = context or current_context()
    if context.platform not in grapin.supported_platforms:
        raise PathNotResolved(f"{grapin.app_name} supports {', '.join(grapin.supported_platforms)}, not {context.platform}")
    found: list[ResolvedPart] = []
    reasons: list[str] = []
    for part in grapin.paths_for(context.platform):
        for location in part.locations_for(context.platform):
            try:
                path, glob = resolve_location(location, placeholders, context, file=part.file)
            except PathNotResolved as exc:
                reasons.append(str(exc))
                continue
            include = tuple(_under_glob(glob, part.include)) if glob else tuple(part.include)
            is_file = path.is_file() if part.file is None else bool(part.file)
            found.append(ResolvedPart(part.name, path, is_file and not glob, include, tuple(part.exclude)))
            break
        else:
            absent = _absent_place(part, placeholders, context)
            if absent is not None:
                found.append(absent)
    if not any(part.present for part in found):
        raise PathNotResolved("; ".join(dict.fromkeys(reasons)) or f"{grapin.app_name} names no path for {context.platform}")
    return found


def _absent_place(part: GrapinPath, placeholders: Mapping[str, Placeholder], context: ResolveContext
                  ) -> ResolvedPart | None:
    """Where a path found nowhere here goes when a peer sends its files: its first location, if that
    names one place (no glob, no placeholder that needs the disk) and whether it is a file is known."""
    locations = part.locations_for(context.platform)
    if not locations or part.file is None or any(has_glob(c) for c in locations[0].split("/")):
        return None
    try:
        path = resolve_json_path(locations[0], placeholders, context)
    except PathNotResolved:
        return None
    return ResolvedPart(part.name, path, bool(part.file), tuple(part.include), tuple(part.exclude), present=False)


def resolve_location(location: str, placeholders: Mapping[str, Placeholder], context: ResolveContext,
                     *, file: bool | None = False) -> tuple[Path, str]:
    """``(path, glob)``: where ``location`` is, if it exists. Without glob characters, the folder (or
    ``file``; None: either) itself and ``""``; with some, the folder before the first component holding
    one and the rest as a pattern anchored there (``/*.default-release``), once an entry matches."""
    components = location.split("/")
    start = 1 if location.startswith("/") else 0
    first = next((i for i in range(max(start, 1), len(components)) if has_glob(components[i])), None)
    if first is None:
        path = resolve_json_path(location, placeholders, context)
        exists = path.exists() if file is None else path.is_file() if file else path.is_dir()
        if not exists:
            raise PathNotResolved(f"{'file' if file else 'folder' if file is False else ''} {path} does not exist"
                                  .lstrip())
        return path, ""
    base = resolve_json_path("/".join(components[:first]) or "/", placeholders, context)
    if not base.is_dir():
        raise PathNotResolved(f"folder {base} does not exist")
    rest = "/".join(components[first:])
    try:
        matched = next(iter(base.glob(rest)), None)
    except (OSError, ValueError) as exc:
        raise PathNotResolved(f"cannot look for {rest!r} in {base}: {exc}") from None
    if matched is None:
        raise PathNotResolved(f"nothing in {base} matches {rest!r}")
    return base, "/" + rest


def _under_glob(glob: str, include: list[str]) -> list[str]:
    """``include`` patterns (relative to each entry ``glob`` matches) as patterns relative to the folder
    the glob starts in; without any, the glob itself (and, for folders, what they hold)."""
    if not include:
        return [glob]
    out = []
    for pattern in include:
        anchored = "/" in pattern.rstrip("/")
        out.append(f"{glob}/{pattern.lstrip('/')}" if anchored else f"{glob}/**/{pattern}")
    return out


def include_patterns(part: ResolvedPart, prefix: str = "") -> list[str]:
    """The ignore patterns (``.ecosysignore`` syntax) that keep only what ``part`` syncs, under the
    task folder ``prefix`` ('' for the task's root): everything but its includes is ignored, then its
    excludes."""
    base = f"/{prefix}" if prefix else ""

    def placed(pattern: str) -> str:
        anchored = "/" in pattern.rstrip("/")
        if not base:
            return pattern
        return f"{base}/{pattern.lstrip('/')}" if anchored else f"{base}/**/{pattern}"

    lines: list[str] = []
    if part.include:
        lines += [f"{base}/**" if base else "*", f"!{base}/**/" if base else "!*/"]
        for pattern in part.include:
            lines.append("!" + placed(pattern))
            if pattern.endswith("/"):
                lines.append("!" + placed(pattern) + "**")
    lines += [placed(pattern) for pattern in part.exclude]
    return lines


def surely_absent(raw: dict, context: ResolveContext) -> bool:
    """True when a grapin's raw JSON (not validated) certainly finds nothing here: the platform is not
    among its own, or the fixed beginning of each of its locations (up to the first placeholder or
    glob) does not exist. One ``stat`` per location, so thousands of imported grapins are sifted in well
    under a second before the few left are validated and resolved. False means "look properly"."""
    platforms = raw.get("SupportedPlatforms")
    if isinstance(platforms, list) and platforms and context.platform not in platforms:
        return True
    locations: list = []
    if isinstance(raw.get("Paths"), list):
        for part in raw["Paths"]:
            places = part.get("Locations") if isinstance(part, dict) else None
            if isinstance(places, dict):
                locations += places.get(context.platform) or places.get("Any") or []
    else:
        by_platform = raw.get("AppSyncDataFolderPathByPlatform")
        locations.append((by_platform or {}).get(context.platform) if isinstance(by_platform, dict) else None)
        locations[-1] = locations[-1] or raw.get("AppSyncDataFolderPath")
    return bool(locations) and all(_prefix_absent(loc, context) for loc in locations)


def _prefix_absent(location: object, context: ResolveContext) -> bool:
    if not isinstance(location, str) or not location:
        return False
    parts = location.split("/")
    anchor = anchor_of(location)
    try:
        if anchor is not None:
            base = anchor_folder(anchor, context)
        elif parts[0] == "~":
            base = context.home
        else:
            return False  # absolute and drive paths: looked at properly
    except PathNotResolved:
        return True  # an anchor with no meaning here
    fixed = []
    for part in parts[1:]:
        if "%" in part or has_glob(part):
            break
        if part:
            fixed.append(part)
    return bool(fixed) and not os.path.exists(base.joinpath(*fixed))
