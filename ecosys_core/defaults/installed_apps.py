"""Tout-en-un apps installed under ``ECOSYS_HOME/apps/<name>/``, each described by its manifest."""

from __future__ import annotations

from pathlib import Path

from ..config_files import load_model_file
from ..errors import ConfigError
from ..grapins import AppRegistry
from ..hookspecs import hookimpl

APP_MANIFEST = "ecosys-app.json"


class InstalledApps:
    """A plugin registering every app folder of ``apps_dir`` that holds an ``ecosys-app.json`` manifest."""

    def __init__(self, apps_dir: Path) -> None:
        self.apps_dir = apps_dir

    def __repr__(self) -> str:
        return f"InstalledApps({str(self.apps_dir)!r})"

    @hookimpl
    def register_apps(self, registry: AppRegistry) -> None:
        if not self.apps_dir.is_dir():
            return
        # pydantic loads with the first manifest read
        from ..models import ToutEnUnConfig

        for manifest in sorted(self.apps_dir.glob(f"*/{APP_MANIFEST}")):
            try:
                registry.add(load_model_file(ToutEnUnConfig, manifest), manifest.parent)
            except ConfigError as error:
                registry.add_error(error)
