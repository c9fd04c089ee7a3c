"""What a grapin's task syncs on this machine: its one folder, or its several places, with the ignore
patterns its include and exclude lists give."""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping

from .resolve import include_patterns, resolve_parts
from .types import Placeholder, ResolveContext, TaskLayout, TaskPart

if TYPE_CHECKING:
    from .models import GrapinConfig


def grapin_layout(grapin: GrapinConfig, placeholders: Mapping[str, Placeholder],
                  context: ResolveContext | None = None) -> TaskLayout:
    """The layout of ``grapin``'s task here; PathNotResolved when none of its paths is here.

    A grapin of one folder (every seed grapin) is a task over that folder. A grapin of several paths, or
    of a single file, is a task of several places, each named as the grapin names it, so that devices
    and platforms that keep the app's files in other places still agree on what each file is. A path
    absent here is left out (its files are taken when it exists and the task is made again)."""
    parts = resolve_parts(grapin, placeholders, context)
    running = {"lock_files": tuple(grapin.lock_files), "process_names": tuple(grapin.process_names)}
    if grapin.single_folder:
        (part,) = parts
        return TaskLayout(part.path, (), tuple(include_patterns(part)), **running)
    patterns: list[str] = []
    for part in parts:
        if not part.file:
            patterns += include_patterns(part, part.name)
    return TaskLayout(None, tuple(TaskPart(p.name, p.path, p.file) for p in parts), tuple(patterns), **running)
