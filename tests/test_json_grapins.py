"""JSON grapins dropped into ECOSYS_HOME/plugins/ load; a broken one is named, the others still load."""

from __future__ import annotations

import json

from ecosys_core.resources import bundled_dir


def test_dropped_grapin_is_picked_up(plugins, ecosys_home):
    (ecosys_home.plugins / "mine.json").write_text(json.dumps(
        {"AppName": "My Game", "AppSyncDataFolderPath": "~/.mygame/saves", "SupportedPlatforms": ["Linux"]}))
    entry = plugins.grapins().get("my game")
    assert entry.item.app_name == "My Game" and entry.source.endswith("mine.json")


def test_broken_grapin_is_reported_and_others_still_load(plugins, ecosys_home):
    (ecosys_home.plugins / "broken.json").write_text(json.dumps(
        {"AppName": "Bad", "AppSyncDataFolderPath": "~\\bad", "SupportedPlatforms": ["Linux"]}))
    (ecosys_home.plugins / "good.json").write_text(json.dumps(
        {"AppName": "Good", "AppSyncDataFolderPath": "~/good", "SupportedPlatforms": ["Linux"]}))
    catalogue = plugins.grapins()
    assert [str(e) for e in catalogue.errors] == [
        f"{ecosys_home.plugins / 'broken.json'}: AppSyncDataFolderPath: use '/' as the path separator, not '\\' (in '~\\\\bad')"
    ]
    assert catalogue.get("Good")
    assert len(catalogue) == len(list(bundled_dir("plugins").glob("*.json"))) + 1


def test_user_grapin_replaces_a_bundled_one(plugins, ecosys_home):
    (ecosys_home.plugins / "kitty.json").write_text(json.dumps(
        {"AppName": "kitty", "AppSyncDataFolderPath": "~/dotfiles/kitty", "SupportedPlatforms": ["Linux"]}))
    catalogue = plugins.grapins()
    assert catalogue.get("kitty").item.app_sync_data_folder_path == "~/dotfiles/kitty"
    assert catalogue.replaced and catalogue.replaced[0][0] == "kitty"
