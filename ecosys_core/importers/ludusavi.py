"""Ludusavi's game manifest (``manifest.yaml``) as format 2 grapins, read as a stream: one game at a
time is built from the YAML events and turned into a grapin, so a 17 MB manifest never sits in memory
as a whole.

Ludusavi's placeholders become anchors (``<winAppData>`` → ``%APPDATA%``, ``<xdgConfig>`` →
``%XDG_CONFIG_HOME%``…) and its paths, globs already, stay globs. ``<storeUserId>`` becomes ``*`` (every
user of the store: more than the manifest names, so the game is "widened"). Paths under a game's install
folder (``<base>``, ``<root>``, ``<game>``) and registry keys have no equivalent here: they are left out
with the reason. The manifest is MIT but built from PCGamingWiki data, so it is read from the file the
user gives and what is made of it stays on the user's machine.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import yaml

from ..errors import EcosysError
from .common import ImportResult, safe_part_name, uses_dotdot

LICENCE = "MIT (ludusavi-manifest); data from PCGamingWiki"
OS_NAMES = {"windows": "Win32", "linux": "Linux", "mac": "Darwin"}
# placeholder → (what it becomes, the platforms it means something on)
PLACEHOLDERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "<home>": ("~", ("Win32", "Linux", "Darwin")),
    "<osUserName>": ("%username%", ("Win32", "Linux", "Darwin")),
    "<winAppData>": ("%APPDATA%", ("Win32",)),
    "<winLocalAppData>": ("%LOCALAPPDATA%", ("Win32",)),
    "<winLocalAppDataLow>": ("%LOCALAPPDATALOW%", ("Win32",)),
    "<winDocuments>": ("%DOCUMENTS%", ("Win32",)),
    "<xdgConfig>": ("%XDG_CONFIG_HOME%", ("Linux",)),
    "<xdgData>": ("%XDG_DATA_HOME%", ("Linux",)),
    "<storeUserId>": ("*", ("Win32", "Linux", "Darwin")),
}
UNSUPPORTED = ("<base>", "<root>", "<game>", "<storeGameId>", "<winPublic>", "<winProgramData>", "<winDir>",
               "<regHkcu>", "<regHklm>")
_TOKEN = re.compile(r"<[A-Za-z]+>")


def stream_games(path: Path) -> Iterator[tuple[str, Any]]:
    """``(title, entry)`` for each game of the manifest at ``path``, in file order, one built at a time
    from the parser's events (libyaml's when PyYAML has it). EcosysError for a file that is not a YAML
    mapping of games."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with open(path, "rb") as fh:
            events = yaml.parse(fh, Loader=loader)
            for expected in (yaml.StreamStartEvent, yaml.DocumentStartEvent, yaml.MappingStartEvent):
                event = next(events, None)
                if not isinstance(event, expected):
                    raise EcosysError(f"{path}: not a Ludusavi manifest (a YAML mapping of games)")
            while True:
                event = next(events)
                if isinstance(event, yaml.MappingEndEvent):
                    return
                if not isinstance(event, yaml.ScalarEvent):
                    raise EcosysError(f"{path}: a game title must be text (line {event.start_mark.line + 1})")
                yield event.value, _build(next(events), events)
    except yaml.YAMLError as exc:
        raise EcosysError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        raise EcosysError(f"cannot read {path}: {exc.strerror or exc}") from None


def _build(first: yaml.Event, events: Iterator[yaml.Event]) -> Any:
    """The value starting with event ``first`` (scalars stay text; aliases are not followed)."""
    if isinstance(first, yaml.ScalarEvent):
        return first.value
    if isinstance(first, yaml.AliasEvent):
        return None
    root: Any = {} if isinstance(first, yaml.MappingStartEvent) else []
    stack: list[tuple[Any, str | None]] = [(root, None)]  # (container, pending mapping key)
    while stack:
        event = next(events)
        container, key = stack[-1]
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
            continue
        if isinstance(container, dict) and key is None:  # a mapping key
            stack[-1] = (container, event.value if isinstance(event, yaml.ScalarEvent) else "")
            if not isinstance(event, yaml.ScalarEvent):  # a complex key: its value is skipped as a whole
                _build(event, events)
            continue
        if isinstance(event, yaml.MappingStartEvent) or isinstance(event, yaml.SequenceStartEvent):
            child: Any = {} if isinstance(event, yaml.MappingStartEvent) else []
        else:
            child = event.value if isinstance(event, yaml.ScalarEvent) else None
        if isinstance(container, dict):
            container[key] = child
            stack[-1] = (container, None)
        else:
            container.append(child)
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            stack.append((child, None))
    return root


def import_ludusavi(manifest: Path) -> ImportResult:
    """Every game of ``manifest`` as a grapin (or a skipped row with the reason)."""
    result = ImportResult({"source": "ludusavi", "from": str(manifest), "version": _version(manifest),
                           "licence": LICENCE})
    for title, entry in stream_games(manifest):
        grapin, reason, widened = _grapin(title, entry)
        result.add(title, grapin, reason, widened=widened)
    return result


def _version(manifest: Path) -> str:
    try:
        stat = manifest.stat()
    except OSError:
        return ""
    import hashlib

    digest = hashlib.sha256()
    with open(manifest, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()[:16]} ({stat.st_size} bytes)"


def _grapin(title: str, entry: Any) -> tuple[dict[str, Any] | None, str, bool]:
    if not isinstance(entry, dict):
        return None, "not a mapping", False
    if entry.get("alias"):
        return None, f"an alias of {entry['alias']}", False
    files = entry.get("files") if isinstance(entry.get("files"), dict) else {}
    left_out: list[str] = []
    widened = False
    paths: list[dict[str, Any]] = []
    platforms: set[str] = set()
    for raw, spec in files.items():
        converted, where, reason = _path(raw, spec)
        if converted is None:
            left_out.append(reason)
            continue
        widened = widened or "<storeUserId>" in raw
        name = safe_part_name(_TOKEN.sub(lambda m: m.group(0)[1:-1], raw), [p["Name"] for p in paths])
        paths.append({"Name": name, "File": None, "Locations": {p: [converted] for p in where}})
        platforms.update(where)
    if entry.get("registry"):
        left_out.append("registry keys")
    reasons = sorted(set(left_out))
    if not paths:
        return None, "; ".join(reasons) or "no files", False
    order = [p for p in ("Win32", "Linux", "Darwin") if p in platforms]
    app = title.replace("/", "-").replace("\\", "-").strip() or "untitled"
    grapin = {"FormatVersion": 2, "AppName": app, "SupportedPlatforms": order,
              "AppDescription": "Game saves and settings, imported from the Ludusavi manifest", "Paths": paths}
    reason = ("left out: " + "; ".join(reasons)) if reasons else ""
    if widened:
        reason = ("<storeUserId> matches every user of the store" + (f"; {reason}" if reason else ""))
    return grapin, reason, widened


def _path(raw: str, spec: Any) -> tuple[str | None, tuple[str, ...], str]:
    """``(location, platforms, "")`` for a manifest path, or ``(None, (), reason)``."""
    unsupported = [token for token in _TOKEN.findall(raw) if token not in PLACEHOLDERS]
    if unsupported:
        return None, (), f"paths under {unsupported[0]}"
    if uses_dotdot(raw) or "\\" in raw:
        return None, (), "paths climbing out with '..'"
    text = raw
    platforms = {"Win32", "Linux", "Darwin"}
    for token, (value, where) in PLACEHOLDERS.items():
        if token in text:
            text = text.replace(token, value)
            if token not in ("<home>", "<osUserName>", "<storeUserId>"):
                platforms &= set(where)
    if re.match(r"^[A-Za-z]:/", text):
        platforms &= {"Win32"}
    elif not (text.startswith("~/") or text.startswith("%")):
        return None, (), "paths not under the home or a known folder"
    whens = spec.get("when") if isinstance(spec, dict) else None
    named = {OS_NAMES.get(w.get("os")) for w in whens or () if isinstance(w, dict) and w.get("os")}
    if named and None not in named and not any(isinstance(w, dict) and not w.get("os") for w in whens or ()):
        platforms &= named
    if not platforms:
        return None, (), "paths for no platform Ecosys knows"
    return text.rstrip("/"), tuple(sorted(platforms)), ""
