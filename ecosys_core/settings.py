"""Where Ecosys keeps its state (ECOSYS_HOME) and the layout below it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

from .errors import EcosysError

HOME_ENV = "ECOSYS_HOME"


def default_home() -> Path:
    """Return ECOSYS_HOME from the environment, else the platform's per-user data folder."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_data_dir("ecosys", appauthor=False))


@dataclass(frozen=True)
class HomeLayout:
    """The folders and files under one ECOSYS_HOME (DESIGN §8); creating them is ``ensure()``'s job."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "ecosys.db"

    @property
    def identity(self) -> Path:
        return self.root / "identity"

    @property
    def plugins(self) -> Path:
        return self.root / "plugins"

    @property
    def apps(self) -> Path:
        return self.root / "apps"

    @property
    def largage(self) -> Path:
        return self.root / "largage_aerien"

    @property
    def prompts(self) -> Path:
        return self.root / "prompts"

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def staging(self) -> Path:
        """Received content waiting to be moved into a task folder (see ``fsio.write_temps``)."""
        return self.root / "staging"

    def ensure(self) -> "HomeLayout":
        """Create every folder of the layout (idempotent) and return self."""
        for folder in (self.root, self.plugins, self.apps, self.largage, self.prompts, self.objects, self.logs,
                       self.staging):
            folder.mkdir(parents=True, exist_ok=True)
        self.identity.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self


def layout(home: Path | str | None = None) -> HomeLayout:
    """Return the layout of ``home``, or of :func:`default_home` when None."""
    return HomeLayout(Path(home).expanduser() if home is not None else default_home())


def read_config(home: HomeLayout) -> dict[str, Any]:
    """``ECOSYS_HOME/config.json`` (optional): ``{"peers": ["host:port"], "port": 22000, "mdns": true}``."""
    path = home.root / "config.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise EcosysError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EcosysError(f"{path}: expected a JSON object")
    return data
