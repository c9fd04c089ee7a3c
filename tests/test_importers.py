"""Importing Mackup's and Ludusavi's definitions as grapins, from small definition files these tests
write themselves (the real ones are GPL or built from PCGamingWiki, and never ship with Ecosys)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecosys_core.errors import EcosysError
from ecosys_core.importers.common import IMPORTED_FILE, read_imported
from ecosys_core.importers.ludusavi import import_ludusavi
from ecosys_core.importers.mackup import import_mackup
from ecosys_core.models import GrapinConfig
from ecosys_core.resolve import resolve_parts
from ecosys_core.types import ResolveContext

MACKUP = {
    "git.cfg": "[application]\nname = Git\n\n[configuration_files]\n.gitconfig\n\n[xdg_configuration_files]\n"
               "git/config\ngit/ignore\n",
    "vim.cfg": "[application]\nname = Vim\n\n[configuration_files]\n.vim\n.vim/colors\n.vimrc\n",
    "bartender.cfg": "[application]\nname = Bartender\n\n[configuration_files]\n"
                     "Library/Preferences/com.surteesstudios.Bartender.plist\n",
    "broken.cfg": "[configuration_files]\n.broken\n",
    "escape.cfg": "[application]\nname = Escape\n\n[configuration_files]\n../outside\n",
}
MANIFEST = """\
Example Game:
  files:
    <base>/saves:
      tags: [save]
    <winAppData>/Example/Saves:
      when:
        - os: windows
    <winLocalAppDataLow>/Studio/Example:
      when:
        - os: windows
    <xdgData>/example/*.sav:
      when:
        - os: linux
    <home>/Library/Application Support/Example:
      when:
        - os: mac
  registry:
    HKEY_CURRENT_USER/Software/Example:
      tags: [save]
Store Game:
  files:
    <winDocuments>/My Games/Store/<storeUserId>/profile:
      when:
        - os: windows
          store: steam
Config Game:
  files:
    <xdgConfig>/cfg-game/settings.ini: {}
    <home>/.cfg-game/<osUserName>.sav: {}
Install Only:
  files:
    <root>/steamapps/common/<game>/save: {}
Registry Only:
  registry:
    HKEY_CURRENT_USER/Software/Reg: {}
Nick:
  alias: Example Game
"""


def write_all(folder: Path, files: dict[str, str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def ctx(home: Path, platform: str) -> ResolveContext:
    return ResolveContext(home=home, username="josette", platform=platform)


def test_mackup_definitions_become_grapins_of_files_and_folders(tmp_path: Path, plugins):
    result = import_mackup(write_all(tmp_path / "applications", MACKUP))
    rows = {r.name: r for r in result.rows}
    assert {n: r.outcome for n, r in rows.items()} == {"bartender": "imported", "broken": "skipped",
                                                      "escape": "skipped", "git": "imported", "vim": "imported"}
    assert "no [application] name" in rows["broken"].reason and "outside the home" in rows["escape"].reason
    assert rows["bartender"].platforms == ("Darwin",), "Library/ exists on macOS only"
    assert result.source["licence"] == "GPL-3.0-or-later"
    grapins = {g["AppName"]: GrapinConfig.model_validate(g) for g in result.grapins}
    assert [p.name for p in grapins["Vim"].paths] == [".vim", ".vimrc"], ".vim/colors comes with .vim"
    home = tmp_path / "home"
    (home / ".config" / "git").mkdir(parents=True)
    (home / ".config" / "git" / "config").write_text("[user]")
    (home / ".gitconfig").write_text("[core]")
    for platform in ("Linux", "Darwin"):
        parts = resolve_parts(grapins["Git"], plugins.placeholders(), ctx(home, platform))
        assert [(p.name, p.path, p.file) for p in parts] == [
            (".gitconfig", home / ".gitconfig", True), ("xdg__git__config", home / ".config" / "git" / "config", True)]


def test_ludusavi_placeholders_constraints_and_what_is_left_out(tmp_path: Path, plugins):
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(MANIFEST)
    result = import_ludusavi(manifest)
    rows = {r.name: r for r in result.rows}
    assert {n: r.outcome for n, r in rows.items()} == {
        "Example Game": "imported", "Store Game": "widened", "Config Game": "imported", "Install Only": "skipped",
        "Registry Only": "skipped", "Nick": "skipped"}
    assert "paths under <base>" in rows["Example Game"].reason and "registry keys" in rows["Example Game"].reason
    assert "<root>" in rows["Install Only"].reason and "alias of Example Game" in rows["Nick"].reason
    assert rows["Store Game"].platforms == ("Win32",) and "every user of the store" in rows["Store Game"].reason
    grapins = {g["AppName"]: GrapinConfig.model_validate(g) for g in result.grapins}
    example = grapins["Example Game"]
    assert {loc for p in example.paths for locs in p.locations.values() for loc in locs} == {
        "%APPDATA%/Example/Saves", "%LOCALAPPDATALOW%/Studio/Example", "%XDG_DATA_HOME%/example/*.sav",
        "~/Library/Application Support/Example"}
    home = tmp_path / "home"
    (home / ".local" / "share" / "example").mkdir(parents=True)
    (home / ".local" / "share" / "example" / "slot1.sav").write_text("save")
    (part,) = resolve_parts(example, plugins.placeholders(), ctx(home, "Linux"))
    assert part.path == home / ".local" / "share" / "example" and part.include == ("/*.sav",)
    (home / "AppData" / "LocalLow" / "Studio" / "Example").mkdir(parents=True)
    (part,) = resolve_parts(example, plugins.placeholders(), ctx(home, "Win32"))
    assert part.path == home / "AppData" / "LocalLow" / "Studio" / "Example"
    (home / ".cfg-game").mkdir()
    (home / ".cfg-game" / "josette.sav").write_text("s")
    parts = resolve_parts(grapins["Config Game"], plugins.placeholders(), ctx(home, "Linux"))
    assert [p.path for p in parts] == [home / ".cfg-game" / "josette.sav"]


@pytest.mark.parametrize("text, says", [("- a\n- b\n", "not a Ludusavi manifest"),
                                        ("Game: [unclosed\n", "not valid YAML")])
def test_a_manifest_that_is_not_one_is_one_line(tmp_path: Path, text: str, says: str):
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(text)
    with pytest.raises(EcosysError, match=says):
        import_ludusavi(manifest)


def test_cli_import_dry_run_replace_list_here_and_search(run_cli, ecosys_home, user_home: Path, tmp_path: Path):
    apps = write_all(tmp_path / "applications", MACKUP)
    dry = run_cli("grapin", "import", "mackup", str(apps), "--dry-run")
    assert dry.exit_code == 0 and "escape" in dry.output and "nothing written" in dry.output
    assert not (ecosys_home.plugins / "imported-mackup").exists()
    done = json.loads(run_cli("grapin", "import", "mackup", str(apps), "--json").output)
    assert (done["imported"], done["skipped"], done["platforms"]["Darwin"]) == (3, 2, 3)
    source, grapins = read_imported(ecosys_home.plugins / "imported-mackup" / IMPORTED_FILE)
    assert source["source"] == "mackup" and source["licence"] == "GPL-3.0-or-later" and len(grapins) == 3
    (user_home / ".gitconfig").write_text("[core]")
    here = json.loads(run_cli("grapin", "list", "--here", "--json").output)
    assert [r["name"] for r in here] == ["Git"]
    assert [r["name"] for r in json.loads(run_cli("grapin", "search", "bart", "--json").output)] == ["Bartender"]
    assert "Imported from Mackup" not in run_cli("grapin", "show", "Vim").output, "the bundled Vim stays"
    (apps / "git.cfg").unlink()  # importing again replaces the previous import as a whole
    run_cli("grapin", "import", "mackup", str(apps))
    _, grapins = read_imported(ecosys_home.plugins / "imported-mackup" / IMPORTED_FILE)
    assert sorted(g["AppName"] for g in grapins) == ["Bartender", "Vim"]
    assert sorted(p.name for p in (ecosys_home.plugins / "imported-mackup").iterdir()) == [IMPORTED_FILE]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(MANIFEST)
    games = json.loads(run_cli("grapin", "import", "ludusavi", str(manifest), "--json").output)
    assert (games["imported"], games["widened"], games["skipped"]) == (2, 1, 3)
    missing = run_cli("grapin", "import", "ludusavi", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 1 and "does not exist" in missing.stderr


def test_nothing_generated_from_other_tools_ships_with_ecosys():
    root = Path(__file__).parent.parent
    shipped = list((root / "plugins").glob("*.json")) + list((root / "magasin").rglob("*.json"))
    for path in shipped:
        text = path.read_text()
        assert "Imported from Mackup" not in text and "Ludusavi manifest" not in text, path
    assert not list(root.glob("**/applications/*.cfg")), "Mackup's definitions are not in the repository"
