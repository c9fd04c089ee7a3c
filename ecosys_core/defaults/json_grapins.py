"""Grapins written as JSON files in a folder (the bundled ``plugins/`` and ``ECOSYS_HOME/plugins/``)."""

from __future__ import annotations

from pathlib import Path

from ..config_files import load_model_file
from ..errors import ConfigError
from ..grapins import GrapinRegistry
from ..hookspecs import hookimpl
from ..models import GrapinConfig


class JsonGrapinFolder:
    """A plugin that registers every ``*.json`` grapin of ``folder``; a broken file is reported, not fatal."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"JsonGrapinFolder({str(self.folder)!r})"

    def _register(self, registry: GrapinRegistry) -> None:
        if not self.folder.is_dir():
            return
        context = {"placeholders": registry.known_placeholders}
        for path in sorted(self.folder.glob("*.json")):
            try:
                registry.add(load_model_file(GrapinConfig, path, context=context), str(path))
            except ConfigError as error:
                registry.add_error(error)


class BundledGrapins(JsonGrapinFolder):
    """The grapins shipped with Ecosys; called first, so every other source may replace one."""

    @hookimpl(tryfirst=True)
    def register_grapins(self, registry: GrapinRegistry) -> None:
        self._register(registry)


class UserGrapins(JsonGrapinFolder):
    """The grapins the user dropped into ``ECOSYS_HOME/plugins/``; called last, so they win."""

    @hookimpl(trylast=True)
    def register_grapins(self, registry: GrapinRegistry) -> None:
        self._register(registry)
