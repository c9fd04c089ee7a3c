"""Shared fixtures: every test gets its own ECOSYS_HOME and its own fake user home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecosys_core.cli import build_cli
from ecosys_core.plugins import get_plugin_manager
from ecosys_core.settings import HomeLayout
from ecosys_core.store import open_store


@pytest.fixture
def ecosys_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> HomeLayout:
    """A fresh ECOSYS_HOME, also exported so subprocesses and the CLI use it."""
    home = HomeLayout(tmp_path / "ecosys-home").ensure()
    monkeypatch.setenv("ECOSYS_HOME", str(home.root))
    return home


@pytest.fixture
def user_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake user home directory (HOME), so grapins resolve against a tree the test builds."""
    home = tmp_path / "user-home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    for name in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "APPDATA", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)  # the known folders are their usual places in that home
    return home


@pytest.fixture
def store(ecosys_home: HomeLayout):
    s = open_store(ecosys_home.database)
    yield s
    s.close()


@pytest.fixture
def plugins(ecosys_home: HomeLayout):
    p = get_plugin_manager(ecosys_home)
    p.pm.check_pending()
    return p


@pytest.fixture
def run_cli(ecosys_home: HomeLayout):
    """Invoke the CLI in-process; returns click's Result (stdout and stderr kept apart)."""
    runner = CliRunner()
    cli = build_cli()

    def run(*args: str, input: str | None = None):
        return runner.invoke(cli, list(args), input=input, catch_exceptions=False)

    return run


def run_ecosys(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real ``ecosys`` program in a subprocess (what a user types)."""
    return subprocess.run(
        [sys.executable, "-m", "ecosys_core", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )
