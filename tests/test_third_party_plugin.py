"""A real third-party distribution with an ``ecosys`` entry point, pip-installed into the test
environment, adds a placeholder, a grapin and a CLI command to the real ``ecosys`` program."""

from __future__ import annotations

import getpass
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import run_ecosys

EXAMPLE = Path(__file__).parent / "plugin_example"
# The plugin is installed into the one Python environment for the module's tests and removed after
# them: on two workers, one worker's removal would pull it from under the other's tests.
pytestmark = pytest.mark.xdist_group("installs-the-example-plugin")


@pytest.fixture(scope="module")
def installed_example_plugin(tmp_path_factory):
    # Copy so the build leaves no egg-info in the repository.
    import shutil

    src = tmp_path_factory.mktemp("example") / "plugin_example"
    shutil.copytree(EXAMPLE, src)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "install", "--no-deps", "--no-build-isolation", str(src)], check=True, timeout=300)
    yield
    subprocess.run([*pip, "uninstall", "-y", "ecosys-example-plugin"], check=True, timeout=120)


def test_entry_point_plugin_is_listed_with_its_version(installed_example_plugin, tmp_path: Path):
    result = run_ecosys("--home", str(tmp_path), "plugins", "--json")
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["example"]["version"] == "1.2.3"
    assert set(rows["example"]["hooks"]) == {"register_placeholders", "register_grapins", "register_commands"}


def test_plugin_placeholder_and_grapin_resolve(installed_example_plugin, tmp_path: Path):
    fake_home = tmp_path / "user"
    (fake_home / "bookshelf" / getpass.getuser()).mkdir(parents=True)
    result = run_ecosys("--home", str(tmp_path / "eh"), "grapin", "resolve", "Example Books", env={"HOME": str(fake_home)})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(fake_home / "bookshelf" / getpass.getuser())


def test_plugin_command_runs(installed_example_plugin, tmp_path: Path):
    result = run_ecosys("--home", str(tmp_path), "shelf")
    assert result.returncode == 0 and result.stdout == "hello from the example plugin\n"
    assert run_ecosys("shelf", "--home", str(tmp_path)).returncode == 0  # --home added to plugin commands too
