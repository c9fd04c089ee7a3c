"""Placeholders and path resolution: deterministic, platform-aware, extensible by plugins."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecosys_core.errors import PathNotResolved
from ecosys_core.hookspecs import hookimpl
from ecosys_core.models import GrapinConfig
from ecosys_core.resolve import natural_version_key, resolve_grapin, resolve_json_path
from ecosys_core.types import Placeholder, ResolveContext


def ctx(home: Path, platform: str = "Linux", user: str = "josette") -> ResolveContext:
    return ResolveContext(home=home, username=user, platform=platform)


def grapin(path: str, platforms=("Linux",), **extra) -> GrapinConfig:
    return GrapinConfig.model_validate({"AppName": "App", "AppSyncDataFolderPath": path, "NeedsFormat": "%" in path,
                                        "SupportedPlatforms": list(platforms), **extra})


def test_home_anchor_and_os_separator(tmp_path: Path, plugins):
    path = resolve_grapin(grapin("~/.config/app"), plugins.placeholders(), ctx(tmp_path))
    assert path == tmp_path / ".config" / "app"


def test_username_is_substituted(tmp_path: Path, plugins):
    path = resolve_json_path(f"{tmp_path}/users/%username%/data".replace("\\", "/"), plugins.placeholders(), ctx(tmp_path))
    assert path == tmp_path / "users" / "josette" / "data"


def test_version_picks_the_highest_by_natural_order(tmp_path: Path, plugins):
    for v in ("2.9", "2.10", "2.10-old-file", "10.0a", "1.99"):
        (tmp_path / "GIMP" / v).mkdir(parents=True)
    (tmp_path / "GIMP" / "99.0").write_text("a file, not a folder")
    path = resolve_json_path("~/GIMP/%version%/x", plugins.placeholders(), ctx(tmp_path))
    assert path == tmp_path / "GIMP" / "10.0a" / "x"


def test_version_with_prefix_only_matches_that_prefix(tmp_path: Path, plugins):
    for name in ("PyCharmCE2023.3", "PyCharmCE2024.1", "PyCharm2099.1"):
        (tmp_path / "JetBrains" / name).mkdir(parents=True)
    path = resolve_json_path("~/JetBrains/PyCharmCE%version%", plugins.placeholders(), ctx(tmp_path))
    assert path.name == "PyCharmCE2024.1"


def test_natural_version_key_orders_numbers_numerically():
    assert sorted(["1.10", "1.9", "1.2"], key=natural_version_key) == ["1.2", "1.9", "1.10"]


def test_any_picks_the_first_match_by_name_and_skips_hidden(tmp_path: Path, plugins):
    for name in ("zz.default-release", "ab12.default-release", ".hidden.default-release", "x.default"):
        (tmp_path / "ff" / name).mkdir(parents=True)
    path = resolve_json_path("~/ff/%any%.default-release", plugins.placeholders(), ctx(tmp_path))
    assert path.name == "ab12.default-release"


def test_walk_without_match_says_why(tmp_path: Path, plugins):
    (tmp_path / "ff").mkdir()
    with pytest.raises(PathNotResolved, match="no entry of .* matches"):
        resolve_json_path("~/ff/%any%.default-release", plugins.placeholders(), ctx(tmp_path))
    with pytest.raises(PathNotResolved, match="does not exist"):
        resolve_json_path("~/missing/%version%", plugins.placeholders(), ctx(tmp_path))


def test_platform_filtering(tmp_path: Path, plugins):
    with pytest.raises(PathNotResolved, match="supports Win32, not Linux"):
        resolve_grapin(grapin("~/x", platforms=("Win32",)), plugins.placeholders(), ctx(tmp_path))


def test_per_platform_path_is_used(tmp_path: Path, plugins):
    g = grapin("~/.config/app", platforms=("Linux", "Win32"), AppSyncDataFolderPathByPlatform={"Win32": "~/AppData/Roaming/app"})
    assert resolve_grapin(g, plugins.placeholders(), ctx(tmp_path, "Win32")) == tmp_path / "AppData" / "Roaming" / "app"
    assert resolve_grapin(g, plugins.placeholders(), ctx(tmp_path, "Linux")) == tmp_path / ".config" / "app"


def test_drive_letter_only_resolves_on_win32(tmp_path: Path, plugins):
    with pytest.raises(PathNotResolved, match="drive letter"):
        resolve_json_path("C:/Users/%username%/x", plugins.placeholders(), ctx(tmp_path, "Linux"))


class ShelfPlaceholder:
    """A third-party placeholder: %shelf% becomes 'books'."""

    @hookimpl
    def register_placeholders(self, register):
        register(Placeholder("shelf", lambda req: req.component.replace("%shelf%", "books")))


def test_a_plugin_adds_a_placeholder(tmp_path: Path, plugins):
    plugins.pm.register(ShelfPlaceholder())
    try:
        plugins._placeholders = None
        table = plugins.placeholders()
        g = GrapinConfig.model_validate(
            {"AppName": "Lib", "AppSyncDataFolderPath": "~/%shelf%/%username%", "NeedsFormat": True,
             "SupportedPlatforms": ["Linux"]},
            context={"placeholders": set(table)},
        )
        assert resolve_grapin(g, table, ctx(tmp_path)) == tmp_path / "books" / "josette"
    finally:
        plugins.pm.unregister(name=plugins.pm.get_name(next(p for p in plugins.pm.get_plugins() if isinstance(p, ShelfPlaceholder))))
