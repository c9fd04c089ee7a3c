"""Grapin format 2: several paths (folders and single files) per app and platform, alternatives tried in
order, anchors from the environment and the OS's known folders, globs matching every entry, include and
exclude patterns, and a format version an older Ecosys explains instead of "unknown key"."""

from __future__ import annotations

from pathlib import Path

import pytest
from pathspec import GitIgnoreSpec

from ecosys_core import __version__
from ecosys_core.config_files import parse_model
from ecosys_core.errors import ConfigError, PathNotResolved
from ecosys_core.models import GrapinConfig
from ecosys_core.resolve import include_patterns, resolve_parts
from ecosys_core.types import ResolveContext

VIM = {
    "FormatVersion": 2,
    "AppName": "Vim",
    "SupportedPlatforms": ["Linux", "Darwin", "Win32"],
    "Paths": [
        {"Name": "vimrc", "File": True,
         "Locations": {"Any": ["~/.vimrc", "~/.vim/vimrc"], "Win32": ["~/_vimrc"]}},
        {"Name": "vim", "Locations": {"Any": ["~/.vim"], "Win32": ["~/vimfiles"]}, "Exclude": ["swap/", "*.swp"]},
    ],
}


def ctx(home: Path, platform: str = "Linux", **folders: str) -> ResolveContext:
    return ResolveContext(home=home, username="josette", platform=platform, folders=folders)


def touch(path: Path, data: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data)
    return path


def test_seed_grapins_are_format_1_and_read_as_one_folder():
    grapin = GrapinConfig.model_validate({"AppName": "Kitty", "AppSyncDataFolderPath": "~/.config/kitty",
                                          "SupportedPlatforms": ["Linux"]})
    assert grapin.format_version == 1 and grapin.single_folder
    (part,) = grapin.paths_for("Linux")
    assert part.locations_for("Linux") == ["~/.config/kitty"] and not part.file


def test_several_paths_files_and_alternatives(tmp_path: Path, plugins):
    grapin = GrapinConfig.model_validate(VIM)
    assert not grapin.single_folder
    touch(tmp_path / ".vim" / "vimrc")  # the second place Vim looks for its vimrc
    touch(tmp_path / ".vim" / "colors" / "dark.vim")
    parts = resolve_parts(grapin, plugins.placeholders(), ctx(tmp_path))
    assert [(p.name, p.path, p.file) for p in parts] == [
        ("vimrc", tmp_path / ".vim" / "vimrc", True), ("vim", tmp_path / ".vim", False)]
    touch(tmp_path / ".vimrc")  # the first alternative wins once it exists
    assert resolve_parts(grapin, plugins.placeholders(), ctx(tmp_path))[0].path == tmp_path / ".vimrc"
    touch(tmp_path / "_vimrc")
    win = resolve_parts(grapin, plugins.placeholders(), ctx(tmp_path, "Win32"))
    assert [(p.path, p.present) for p in win] == [(tmp_path / "_vimrc", True), (tmp_path / "vimfiles", False)], \
        "vimfiles is not there yet: it goes at its first location when files arrive"


def test_nothing_found_says_where_it_looked(tmp_path: Path, plugins):
    with pytest.raises(PathNotResolved) as caught:
        resolve_parts(GrapinConfig.model_validate(VIM), plugins.placeholders(), ctx(tmp_path))
    assert ".vimrc does not exist" in str(caught.value) and ".vim does not exist" in str(caught.value)


@pytest.mark.parametrize("anchor, platform, folders, expected", [
    ("XDG_CONFIG_HOME", "Linux", {}, ".config"),
    ("XDG_CONFIG_HOME", "Linux", {"XDG_CONFIG_HOME": "/ELSEWHERE"}, "/ELSEWHERE"),
    ("XDG_DATA_HOME", "Linux", {}, ".local/share"),
    ("APPDATA", "Win32", {}, "AppData/Roaming"),
    ("LOCALAPPDATA", "Win32", {}, "AppData/Local"),
    ("LOCALAPPDATALOW", "Win32", {}, "AppData/LocalLow"),
    ("DOCUMENTS", "Win32", {"DOCUMENTS": "/ELSEWHERE"}, "/ELSEWHERE"),
    ("DOCUMENTS", "Darwin", {}, "Documents"),
])
def test_anchors_come_from_the_environment_or_their_usual_place(tmp_path: Path, plugins, anchor, platform,
                                                               folders, expected):
    base = Path(expected.replace("/ELSEWHERE", str(tmp_path / "elsewhere"))) if expected.startswith("/") \
        else tmp_path / expected
    folders = {k: str(tmp_path / "elsewhere") for k in folders}
    touch(base / "App" / "settings.ini")
    grapin = GrapinConfig.model_validate({"FormatVersion": 2, "AppName": "App", "SupportedPlatforms": [platform],
                                          "Paths": [{"Name": "data", "Locations": {platform: [f"%{anchor}%/App"]}}]})
    (part,) = resolve_parts(grapin, plugins.placeholders(), ctx(tmp_path, platform, **folders))
    assert part.path == base / "App"


def test_an_anchor_without_meaning_on_this_platform_is_explained(tmp_path: Path, plugins):
    grapin = GrapinConfig.model_validate({"FormatVersion": 2, "AppName": "App", "SupportedPlatforms": ["Linux"],
                                          "Paths": [{"Name": "data", "Locations": {"Any": ["%APPDATA%/App"]}}]})
    with pytest.raises(PathNotResolved, match="APPDATA% has no meaning on Linux"):
        resolve_parts(grapin, plugins.placeholders(), ctx(tmp_path))


def test_a_glob_matches_every_entry_as_an_include_pattern(tmp_path: Path, plugins):
    for world in ("Castle", "Island"):
        touch(tmp_path / ".minecraft" / "saves" / world / "level.dat")
    touch(tmp_path / ".minecraft" / "saves" / "notes.txt")
    grapin = GrapinConfig.model_validate({"FormatVersion": 2, "AppName": "Worlds", "SupportedPlatforms": ["Linux"],
                                          "Paths": [{"Name": "saves", "Locations": {"Linux": ["~/.minecraft/saves/*/"]}}]})
    (part,) = resolve_parts(grapin, plugins.placeholders(), ctx(tmp_path))
    assert part.path == tmp_path / ".minecraft" / "saves" and part.include == ("/*/",)
    spec = GitIgnoreSpec.from_lines(include_patterns(part))
    assert not spec.match_file("Castle/level.dat") and not spec.match_file("Island/level.dat")
    assert spec.match_file("notes.txt"), "only the folders the glob names sync"


def test_include_and_exclude_become_ignore_patterns():
    from ecosys_core.resolve import ResolvedPart

    part = ResolvedPart("User", Path("/x"), False, ("settings.json", "snippets/", "/keybindings.json"),
                        ("*.log",))
    spec = GitIgnoreSpec.from_lines(include_patterns(part))
    kept = {p for p in ("settings.json", "keybindings.json", "snippets/a.json", "snippets/deep/b.json",
                        "workspaceStorage/1/state.vscdb", "globalStorage/state.vscdb", "snippets/x.log")
            if not spec.match_file(p)}
    assert kept == {"settings.json", "keybindings.json", "snippets/a.json", "snippets/deep/b.json"}
    placed = GitIgnoreSpec.from_lines(include_patterns(part, "User"))
    assert not placed.match_file("User/settings.json") and placed.match_file("User/workspaceStorage/x")
    assert placed.match_file("User/snippets/x.log")


@pytest.mark.parametrize("change, field, says", [
    ({"FormatVersion": 3, "Paths": "whatever", "NewKey": 1}, None, "needs Ecosys >= a version reading format 3"),
    ({"FormatVersion": 3, "MinEcosysVersion": "0.9"}, None, "needs Ecosys >= 0.9"),
    ({"FormatVersion": 1, "Paths": [{"Name": "a", "Locations": {"Linux": ["~/a"]}}]}, None,
     "Paths needs \"FormatVersion\": 2"),
    ({"Paths": [{"Name": "a", "Locations": {"Linux": ["~/a"]}}, {"Name": "A", "Locations": {"Linux": ["~/b"]}}]},
     None, "same Name"),
    ({"Paths": [{"Name": "a", "Locations": {"Linux": ["relative/a"]}}]}, "Paths.0.Locations", "must start with"),
    ({"Paths": [{"Name": "a", "Locations": {"Linux": ["~/../a"]}}]}, "Paths.0.Locations", "'..'"),
    ({"Paths": [{"Name": "a", "Locations": {"Win32": ["~/a"]}}]}, None, "absent from SupportedPlatforms"),
    ({"Paths": [{"Name": "a", "Locations": {"Linux": ["~/a"]}, "Exclude": ["!"]}]}, "Paths.0.Exclude", "bad pattern"),
    ({"Paths": [{"Name": "a/b", "Locations": {"Linux": ["~/a"]}}]}, "Paths.0.Name", "must not contain"),
    ({"Paths": [{"Name": "a", "Locations": {"Linux": ["%NOPE%/a"]}}]}, "Paths.0.Locations", "%XDG_CONFIG_HOME%"),
    ({"Paths": []}, None, "give AppSyncDataFolderPath"),
])
def test_bad_format_2_grapins_name_the_field(change, field, says):
    data = {"FormatVersion": 2, "AppName": "Bad", "SupportedPlatforms": ["Linux"], **change}
    with pytest.raises(ConfigError) as caught:
        parse_model(GrapinConfig, data, source="bad.json")
    assert says in str(caught.value) and "bad.json" in str(caught.value)
    if field:
        assert caught.value.field and caught.value.field.startswith(field)
    if data["FormatVersion"] == 3:
        assert "unknown key" not in str(caught.value) and __version__ in str(caught.value)
