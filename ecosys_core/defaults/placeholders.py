"""The builtin placeholders: the seed's %username%, %version% (highest version) and %any% (first name in
order), and %mozilla_profile% (the default profile of a Mozilla app)."""

from __future__ import annotations

import configparser
from typing import Callable

from ..errors import PathNotResolved
from ..hookspecs import hookimpl
from ..resolve import matching_children, natural_version_key
from ..types import Placeholder, PlaceholderRequest


def resolve_username(request: PlaceholderRequest) -> str:
    """Replace %username% with the running user's login name."""
    return request.component.replace("%username%", request.context.username)


def resolve_version(request: PlaceholderRequest) -> str:
    """Pick the child whose %version% part is highest by natural version order (1.10 > 1.9); ties by name."""
    children = matching_children(request, "version")
    name, _ = max(children, key=lambda item: (natural_version_key(item[1]), item[0]))
    return name


def resolve_any(request: PlaceholderRequest) -> str:
    """Pick the first matching child by code-point order of its name (deterministic, seed: 'first child')."""
    children = matching_children(request, "any")
    return min(children)[0]


def resolve_mozilla_profile(request: PlaceholderRequest) -> str:
    """Replace %mozilla_profile% with the profile Firefox or Thunderbird starts with: the one the
    ``profiles.ini`` of the folder above names as its install's default, else the profile marked
    ``Default=1``, else the only one. Relative profiles only (``Profiles/x.default-release`` on Windows
    and macOS, ``x.default-release`` on Linux); an absolute or climbing path is not followed."""
    if request.component != "%mozilla_profile%":
        raise PathNotResolved("%mozilla_profile% must be a whole path component")
    ini = request.parent / "profiles.ini"
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read(ini, encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise PathNotResolved(f"{ini} cannot be read: {exc}") from None
    if not parser.sections():
        raise PathNotResolved(f"{ini} does not exist or names no profile")
    profiles = [parser[s] for s in parser.sections() if s.startswith("Profile")]
    relative = {p.get("Path", ""): p for p in profiles if p.get("IsRelative", "1") == "1"}
    chosen = next((parser[s].get("Default", "") for s in parser.sections() if s.startswith("Install")), "")
    if chosen not in relative:
        chosen = next((path for path, p in relative.items() if p.get("Default") == "1"), "")
    if not chosen and len(relative) == 1:
        chosen = next(iter(relative))
    parts = chosen.replace("\\", "/").split("/")
    if not chosen or chosen.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise PathNotResolved(f"{ini} names no default profile inside {request.parent}")
    return chosen


@hookimpl
def register_placeholders(register: Callable[[Placeholder], None]) -> None:
    register(Placeholder("username", resolve_username, "the running user's login name", order=0))
    register(Placeholder("version", resolve_version, "the highest-versioned matching child folder", order=10))
    register(Placeholder("any", resolve_any, "the first matching child, by name", order=10))
    register(Placeholder("mozilla_profile", resolve_mozilla_profile,
                         "the default profile in the profiles.ini of the folder above (Firefox, Thunderbird)", order=10))
