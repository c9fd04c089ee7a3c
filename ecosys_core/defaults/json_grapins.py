"""Grapins written as JSON files in a folder (the bundled ``plugins/`` and ``ECOSYS_HOME/plugins/``)."""

from __future__ import annotations

import functools
from pathlib import Path

from ..config_files import load_model_file, parse_model
from ..errors import ConfigError
from ..grapins import GrapinRegistry
from ..hookspecs import hookimpl
from ..importers.common import IMPORTED_FILE, read_imported


class JsonGrapinFolder:
    """A plugin that registers every ``*.json`` grapin of ``folder``; a broken file is reported, not fatal."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __repr__(self) -> str:
        return f"JsonGrapinFolder({str(self.folder)!r})"

    def _register(self, registry: GrapinRegistry) -> None:
        if not self.folder.is_dir():
            return
        # pydantic loads with the first grapin read, not with the daemon
        from ..models import GrapinConfig

        context = {"placeholders": registry.known_placeholders}
        for path in sorted(self.folder.glob("*.json")):
            try:
                registry.add(load_model_file(GrapinConfig, path, context=context), str(path))
            except ConfigError as error:
                registry.add_error(error)

    def _register_imports(self, registry: GrapinRegistry) -> None:
        """The grapins of each ``imported-<source>/grapins.json`` (see ``ecosys grapin import``)."""
        from ..models import GrapinConfig

        context = {"placeholders": registry.known_placeholders}
        for path in sorted(self.folder.glob(f"imported-*/{IMPORTED_FILE}")):
            try:
                _, grapins = read_imported(path)
            except (OSError, ValueError) as exc:
                registry.add_error(ConfigError(str(path), None, f"not an import file: {exc}"))
                continue
            for index, data in enumerate(grapins):
                source = f"{path}#{index}"
                registry.add_unchecked(data, source, functools.partial(parse_model, GrapinConfig, data, source=source,
                                                                       context=context))


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


class ImportedGrapins(JsonGrapinFolder):
    """The grapins ``ecosys grapin import`` wrote into ``ECOSYS_HOME/plugins/imported-*/``: called
    before the bundled ones (registered after them, both first), so a curated bundled grapin, and any
    other source, replaces an imported one of the same name."""

    @hookimpl(tryfirst=True)
    def register_grapins(self, registry: GrapinRegistry) -> None:
        self._register_imports(registry)
