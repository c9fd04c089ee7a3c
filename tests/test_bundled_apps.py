"""Each corrected bundled grapin resolved on a fake home laid out as the app lays it out (its documented
places, alternatives included), and leaving out what must not sync (locks, journals, caches)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pathspec import GitIgnoreSpec

from ecosys_core.config_files import load_model_file
from ecosys_core.grapin_layout import grapin_layout
from ecosys_core.models import GrapinConfig
from ecosys_core.resources import bundled_dir
from ecosys_core.sync.ignores import APP_DEFAULTS
from ecosys_core.types import ResolveContext


def grapin(stem: str) -> GrapinConfig:
    return load_model_file(GrapinConfig, bundled_dir("plugins") / f"{stem}.json")


def ctx(home: Path, platform: str = "Linux") -> ResolveContext:
    return ResolveContext(home=home, username="josette", platform=platform)


def touch(path: Path, text: str = "x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def synced(layout, paths: list[str]) -> set[str]:
    """Which of ``paths`` (relative to the task) the task's patterns let through."""
    spec = GitIgnoreSpec.from_lines(list(APP_DEFAULTS) + list(layout.patterns))
    return {p for p in paths if not spec.match_file(p)}


PROFILES_INI = """[Install4F96D1932A9F858E]
Default={default}
Locked=1

[Profile1]
Name=old
IsRelative=1
Path={other}
Default=1

[Profile0]
Name=default-release
IsRelative=1
Path={default}
"""
FIREFOX = {
    "classic": ("Linux", ".mozilla/firefox", "x1.default-release"),
    "xdg (Firefox 143+)": ("Linux", ".config/mozilla/firefox", "x1.default-release"),
    "snap": ("Linux", "snap/firefox/common/.mozilla/firefox", "x1.default-release"),
    "flatpak": ("Linux", ".var/app/org.mozilla.firefox/.mozilla/firefox", "x1.default-release"),
    "windows": ("Win32", "AppData/Roaming/Mozilla/Firefox", "Profiles/x1.default-release"),
    "macos": ("Darwin", "Library/Application Support/Firefox", "Profiles/x1.default-release"),
}


@pytest.mark.parametrize("where", FIREFOX)
def test_firefox_finds_the_profile_profiles_ini_marks_default(tmp_path: Path, plugins, where: str):
    platform, root, default = FIREFOX[where]
    other = default.replace("x1.default-release", "z9.old")
    touch(tmp_path / root / "profiles.ini", PROFILES_INI.format(default=default, other=other))
    profile = tmp_path / root / default
    for name in ("places.sqlite", "prefs.js", "places.sqlite-wal", "lock", ".parentlock", "cache2/entries/A1",
                 "sessionstore-backups/recovery.jsonlz4", "crashes/events/x", "extensions/ublock.xpi"):
        touch(profile / name)
    touch(tmp_path / root / other / "prefs.js")
    layout = grapin_layout(grapin("firefox"), plugins.placeholders(), ctx(tmp_path, platform))
    assert layout.root == profile and not layout.parts
    assert synced(layout, ["places.sqlite", "prefs.js", "places.sqlite-wal", "lock", ".parentlock",
                           "cache2/entries/A1", "sessionstore-backups/recovery.jsonlz4", "crashes/events/x",
                           "extensions/ublock.xpi"]) == {"places.sqlite", "prefs.js", "extensions/ublock.xpi"}


def test_thunderbird_leaves_out_the_imap_cache_and_search_index(tmp_path: Path, plugins):
    root = tmp_path / ".thunderbird"
    touch(root / "profiles.ini", "[Profile0]\nName=default\nIsRelative=1\nPath=ab.default-release\nDefault=1\n")
    (root / "ab.default-release").mkdir()
    layout = grapin_layout(grapin("thunderbird"), plugins.placeholders(), ctx(tmp_path))
    assert layout.root == root / "ab.default-release"
    assert synced(layout, ["Mail/Local Folders/Inbox", "ImapMail/imap.example.org/INBOX", "abook.sqlite",
                           "global-messages-db.sqlite", "prefs.js", "Mail/Local Folders/Inbox.msf"]) == {
        "Mail/Local Folders/Inbox", "abook.sqlite", "prefs.js"}


@pytest.mark.parametrize("stem, linux, windows, mac", [
    ("google-chrome", ".config/google-chrome/Default", "AppData/Local/Google/Chrome/User Data/Default",
     "Library/Application Support/Google/Chrome/Default"),
    ("chromium", "snap/chromium/common/chromium/Default", "AppData/Local/Chromium/User Data/Default",
     "Library/Application Support/Chromium/Default"),
])
def test_chrome_and_chromium_sync_bookmarks_and_preferences_only(tmp_path: Path, plugins, stem, linux, windows, mac):
    for platform, folder in (("Linux", linux), ("Win32", windows), ("Darwin", mac)):
        home = tmp_path / platform
        (home / folder).mkdir(parents=True)
        layout = grapin_layout(grapin(stem), plugins.placeholders(), ctx(home, platform))
        assert layout.root == home / folder
        assert synced(layout, ["Bookmarks", "Preferences", "Custom Dictionary.txt", "History", "Cache/Cache_Data/f_1",
                               "Local Storage/leveldb/LOCK", "Local Storage/leveldb/000003.log"]) == {
            "Bookmarks", "Preferences", "Custom Dictionary.txt"}


@pytest.mark.parametrize("stem, folder, flatpak, extensions", [
    ("visual-studio-code", "Code", ".var/app/com.visualstudio.code/config/Code/User", ".vscode"),
    ("vscodium", "VSCodium", ".var/app/com.vscodium.codium/config/VSCodium/User", ".vscode-oss"),
])
def test_vs_code_syncs_settings_and_the_extensions_list(tmp_path: Path, plugins, stem, folder, flatpak, extensions):
    user = tmp_path / ".config" / folder / "User"
    user.mkdir(parents=True)
    touch(tmp_path / extensions / "extensions" / "extensions.json", "[]")
    layout = grapin_layout(grapin(stem), plugins.placeholders(), ctx(tmp_path))
    assert [(p.name, p.path, p.file) for p in layout.parts] == [
        ("User", user, False), ("extensions.json", tmp_path / extensions / "extensions" / "extensions.json", True)]
    assert synced(layout, ["User/settings.json", "User/keybindings.json", "User/snippets/py.json",
                           "User/workspaceStorage/1a/state.vscdb", "User/globalStorage/state.vscdb",
                           "User/History/x/entries.json", "User/profiles/p1/settings.json"]) == {
        "User/settings.json", "User/keybindings.json", "User/snippets/py.json", "User/profiles/p1/settings.json"}
    flat = tmp_path / "flat"
    (flat / flatpak).mkdir(parents=True)
    assert grapin_layout(grapin(stem), plugins.placeholders(), ctx(flat)).parts[0].path == flat / flatpak
    win = tmp_path / "win"
    (win / "AppData" / "Roaming" / folder / "User").mkdir(parents=True)
    assert grapin_layout(grapin(stem), plugins.placeholders(), ctx(win, "Win32")).parts[0].path == \
        win / "AppData" / "Roaming" / folder / "User"


@pytest.mark.parametrize("stem, names, expected", [
    ("pycharm", ["PyCharm2024.3", "PyCharm2025.1", "PyCharmCE2023.2"], "PyCharm2025.1"),
    ("pycharm", ["PyCharmCE2023.2", "PyCharmCE2024.1"], "PyCharmCE2024.1"),
    ("intellij-idea", ["IdeaIC2024.2", "IdeaIC2025.1"], "IdeaIC2025.1"),
    ("intellij-idea", ["IntelliJIdea2025.2", "IdeaIC2025.1"], "IntelliJIdea2025.2"),
])
def test_jetbrains_current_folder_names(tmp_path: Path, plugins, stem, names, expected):
    for platform, base in (("Linux", ".config/JetBrains"), ("Win32", "AppData/Roaming/JetBrains"),
                           ("Darwin", "Library/Application Support/JetBrains")):
        home = tmp_path / platform
        for name in names:
            (home / base / name / "options").mkdir(parents=True)
        layout = grapin_layout(grapin(stem), plugins.placeholders(), ctx(home, platform))
        assert layout.root == home / base / expected


@pytest.mark.parametrize("folder, init", [(".config/emacs", ".emacs"), (".emacs.d", ".emacs.el"), (".emacs.d", None)])
def test_emacs_xdg_or_classic_folder_and_init_file(tmp_path: Path, plugins, folder: str, init: str | None):
    touch(tmp_path / folder / "init.el")
    if init:
        touch(tmp_path / init)
    layout = grapin_layout(grapin("emacs"), plugins.placeholders(), ctx(tmp_path))
    expected = [("emacs.d", tmp_path / folder, False), ("emacs", tmp_path / (init or ".emacs"), True)]
    assert [(p.name, p.path, p.file) for p in layout.parts] == expected, "an absent init file goes to ~/.emacs"
    assert synced(layout, ["emacs.d/init.el", "emacs.d/.#init.el", "emacs.d/eln-cache/x.eln",
                           "emacs.d/auto-save-list/.saves-1"]) == {"emacs.d/init.el"}
    win = tmp_path / "win"
    touch(win / "AppData" / "Roaming" / ".emacs.d" / "init.el")
    touch(win / "AppData" / "Roaming" / ".emacs")
    assert [p.path for p in grapin_layout(grapin("emacs"), plugins.placeholders(), ctx(win, "Win32")).parts] == [
        win / "AppData" / "Roaming" / ".emacs.d", win / "AppData" / "Roaming" / ".emacs"]


def test_vim_vimrc_and_runtime_folder_on_each_platform(tmp_path: Path, plugins):
    for platform, rc, folder in (("Linux", ".vimrc", ".vim"), ("Darwin", ".vimrc", ".vim"),
                                 ("Win32", "_vimrc", "vimfiles")):
        home = tmp_path / platform
        touch(home / rc)
        (home / folder / "colors").mkdir(parents=True)
        layout = grapin_layout(grapin("vim"), plugins.placeholders(), ctx(home, platform))
        assert [(p.name, p.path, p.file) for p in layout.parts] == [("vimrc", home / rc, True),
                                                                     ("vim", home / folder, False)]
        assert synced(layout, ["vim/colors/dark.vim", "vim/swap/x.swp", "vim/.dark.vim.swp", "vimrc"]) == {
            "vim/colors/dark.vim", "vimrc"}


def test_minecraft_saves_on_windows_come_from_appdata(tmp_path: Path, plugins):
    touch(tmp_path / "AppData" / "Roaming" / ".minecraft" / "saves" / "World" / "level.dat")
    layout = grapin_layout(grapin("minecraft-saves"), plugins.placeholders(), ctx(tmp_path, "Win32"))
    assert layout.root == tmp_path / "AppData" / "Roaming" / ".minecraft" / "saves"
    assert synced(layout, ["World/level.dat", "World/session.lock"]) == {"World/level.dat"}


def test_obs_syncs_global_ini_and_basic_only(tmp_path: Path, plugins):
    root = tmp_path / ".var" / "app" / "com.obsproject.Studio" / "config" / "obs-studio"
    root.mkdir(parents=True)
    layout = grapin_layout(grapin("obs-studio"), plugins.placeholders(), ctx(tmp_path))
    assert layout.root == root
    assert synced(layout, ["global.ini", "basic/profiles/Untitled/basic.ini", "basic/scenes/Untitled.json",
                           "logs/2026-11-28.txt", "plugin_config/obs-browser/Cache/data_0", "crashes/x.txt"]) == {
        "global.ini", "basic/profiles/Untitled/basic.ini", "basic/scenes/Untitled.json"}
