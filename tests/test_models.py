"""GrapinConfig and ToutEnUnConfig accept the seed's JSON and reject bad input with a clear message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecosys_core.config_files import load_model_file, parse_model
from ecosys_core.errors import ConfigError
from ecosys_core.models import GrapinConfig, ToutEnUnConfig

SEED_GRAPIN = {
    "AppName": "QAgenda",
    "AppSyncDataFolderPath": "~/.config/QAgenda/%version%",
    "NeedsFormat": True,
    "SupportedPlatforms": ["Linux", "Win32", "Android"],
    "AppDescription": "an agenda",
    "AppIconURL": "https://example.invalid/icon.png",
}
SEED_APP = {
    "AppName": "Notes Tout En Un",
    "AppDownloadUrl": "https://example.invalid/notes.zip",
    "NeedsInstaller": False,
    "AppExecutableName": "notes.py",
    "AppInstallerPath": "",
    "AppUninstallerPath": "",
    "AppSyncDataFolderPath": "data/notes",
    "AppDescription": "notes",
    "AppIconURL": "",
    "SupportedPlatforms": ["Linux", "Windows"],
}


def bad(model, **changes):
    with pytest.raises(ConfigError) as info:
        parse_model(model, {**(SEED_GRAPIN if model is GrapinConfig else SEED_APP), **changes}, source="x.json")
    return info.value


def test_seed_grapin_json_is_accepted_and_round_trips():
    grapin = GrapinConfig.model_validate(SEED_GRAPIN)
    assert grapin.app_name == "QAgenda" and grapin.needs_format
    assert grapin.to_json_dict()["AppSyncDataFolderPath"] == SEED_GRAPIN["AppSyncDataFolderPath"]


def test_seed_app_json_is_accepted_and_windows_means_win32():
    app = ToutEnUnConfig.model_validate(SEED_APP)
    assert app.supported_platforms == ["Linux", "Win32"]
    assert app.executable == "notes.py"


def test_app_executable_defaults_to_name_with_underscores():
    app = ToutEnUnConfig.model_validate({**SEED_APP, "AppExecutableName": ""})
    assert app.executable == "Notes_Tout_En_Un"


def test_unknown_platform_is_rejected():
    err = bad(GrapinConfig, SupportedPlatforms=["Linux", "BeOS"])
    assert err.field == "SupportedPlatforms" and "unknown platform 'BeOS'" in str(err)


def test_backslash_separator_is_rejected():
    err = bad(GrapinConfig, AppSyncDataFolderPath="~\\AppData\\Roaming")
    assert err.field == "AppSyncDataFolderPath" and "'/'" in err.message


def test_empty_name_is_rejected():
    assert bad(GrapinConfig, AppName="  ").field == "AppName"
    assert bad(ToutEnUnConfig, AppName="").field == "AppName"


def test_unknown_placeholder_is_rejected():
    err = bad(GrapinConfig, AppSyncDataFolderPath="~/%colour%/x")
    assert "unknown placeholder %colour%" in err.message


def test_placeholder_without_needs_format_is_rejected():
    assert "NeedsFormat is false" in bad(GrapinConfig, NeedsFormat=False).message


def test_absolute_sync_folder_of_a_tout_en_un_app_is_rejected():
    for path in ("/var/data", "~/data", "C:/data"):
        err = bad(ToutEnUnConfig, AppSyncDataFolderPath=path)
        assert err.field == "AppSyncDataFolderPath" and "relative" in err.message


def test_dotdot_component_is_rejected():
    assert "'..'" in bad(GrapinConfig, AppSyncDataFolderPath="~/a/../b").message
    assert "'..'" in bad(ToutEnUnConfig, AppSyncDataFolderPath="../outside").message


def test_relative_grapin_path_is_rejected():
    assert "must start with" in bad(GrapinConfig, AppSyncDataFolderPath="Documents/x").message


def test_unknown_key_is_named():
    err = bad(GrapinConfig, AppSyncDataFolder="~/x")
    assert "AppSyncDataFolder" in str(err) and "unknown key" in str(err)


def test_installer_required_when_needs_installer():
    assert "AppInstallerPath" in bad(ToutEnUnConfig, NeedsInstaller=True, AppInstallerPath="").message


def test_file_errors_name_the_file_and_the_field(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text(json.dumps({**SEED_GRAPIN, "SupportedPlatforms": ["Amiga"]}))
    with pytest.raises(ConfigError) as info:
        load_model_file(GrapinConfig, path)
    assert str(info.value).startswith(f"{path}: SupportedPlatforms: unknown platform 'Amiga'")


def test_invalid_json_names_file_and_line(tmp_path: Path):
    path = tmp_path / "broken.json"
    path.write_text('{"AppName": "x",\n  oops}')
    with pytest.raises(ConfigError) as info:
        load_model_file(GrapinConfig, path)
    assert str(path) in str(info.value) and "line 2" in str(info.value)


def test_per_platform_override_must_be_a_supported_platform():
    err = bad(GrapinConfig, SupportedPlatforms=["Linux"], AppSyncDataFolderPathByPlatform={"Win32": "~/x"})
    assert "Win32" in str(err)
