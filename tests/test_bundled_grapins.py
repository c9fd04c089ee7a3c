"""The bundled grapins: at least 15 real apps, each valid and each resolving in a fake home tree."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ecosys_core.config_files import load_model_file
from ecosys_core.models import GrapinConfig
from ecosys_core.resolve import resolve_grapin
from ecosys_core.resources import bundled_dir
from ecosys_core.types import ResolveContext

BUNDLED = sorted(bundled_dir("plugins").glob("*.json"))


def test_at_least_fifteen_grapins_are_bundled():
    assert len(BUNDLED) >= 15


def test_bundled_schemas_ship_with_the_package():
    names = {p.name for p in bundled_dir("schemas").glob("*.json")}
    assert {"grapin.schema.json", "toutenun.schema.json"} <= names


def _build_tree(home: Path, json_path: str) -> Path:
    """Create the folders a real install would have, with decoys for the walking placeholders."""
    parts = json_path.split("/")
    assert parts[0] == "~", "bundled grapins are anchored at the home folder"
    current = home
    for part in parts[1:]:
        if "%version%" in part:
            for version in ("1.9", "1.10", "0.2"):
                (current / part.replace("%version%", version)).mkdir(parents=True, exist_ok=True)
            part = part.replace("%version%", "1.10")
        if "%any%" in part:
            for prefix in ("b7x2", "a1c3"):
                (current / part.replace("%any%", prefix)).mkdir(parents=True, exist_ok=True)
            part = part.replace("%any%", "a1c3")
        current = current / part
    current.mkdir(parents=True, exist_ok=True)
    return current


@pytest.mark.parametrize("path", BUNDLED, ids=lambda p: p.stem)
def test_bundled_grapin_is_valid(path: Path):
    grapin = load_model_file(GrapinConfig, path)
    assert grapin.app_description and "Linux" in grapin.supported_platforms
    assert path.stem == re.sub(r"[^a-z0-9]+", "-", grapin.app_name.lower()).strip("-")


FORMAT_1 = [p for p in BUNDLED if json.loads(p.read_text()).get("FormatVersion", 1) == 1]


@pytest.mark.parametrize("path", FORMAT_1, ids=lambda p: p.stem)
def test_bundled_grapin_resolves_in_a_fake_home(path: Path, tmp_path: Path, plugins):
    grapin = load_model_file(GrapinConfig, path)
    checked = 0
    for platform in grapin.supported_platforms:
        json_path = grapin.path_for(platform)
        if json_path.startswith("C:/"):
            continue  # a drive letter resolves only on Windows; see the Minecraft test below
        home = tmp_path / platform
        expected = _build_tree(home, json_path)
        context = ResolveContext(home=home, username="josette", platform=platform)
        assert resolve_grapin(grapin, plugins.placeholders(), context) == expected, platform
        checked += 1
    assert checked >= 1


def test_bundled_names_are_unique():
    names = [json.loads(p.read_text())["AppName"] for p in BUNDLED]
    assert len(names) == len(set(names))
