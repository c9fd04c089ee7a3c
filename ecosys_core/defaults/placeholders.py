"""The seed's placeholders: %username%, %version% (highest version) and %any% (first name in order)."""

from __future__ import annotations

from typing import Callable

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


@hookimpl
def register_placeholders(register: Callable[[Placeholder], None]) -> None:
    register(Placeholder("username", resolve_username, "the running user's login name", order=0))
    register(Placeholder("version", resolve_version, "the highest-versioned matching child folder", order=10))
    register(Placeholder("any", resolve_any, "the first matching child, by name", order=10))
