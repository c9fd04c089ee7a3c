"""The ecosys command line: every command of the foundation, --home/ECOSYS_HOME, and clean errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ecosys_core import __version__
from ecosys_core.prompts import Prompts

from .conftest import run_ecosys


def test_version(run_cli):
    assert run_cli("--version").output.strip() == f"ecosys {__version__}"


def test_init_creates_home_database_and_name(run_cli, ecosys_home):
    result = run_cli("init", "--name", "laptop")
    assert result.exit_code == 0 and "Device name: laptop" in result.output
    assert ecosys_home.database.exists() and ecosys_home.prompts.is_dir() and ecosys_home.identity.is_dir()
    assert "Device name: laptop" in run_cli("init").output  # idempotent, keeps the name


def test_home_option_on_group_and_on_every_command(run_cli, tmp_path: Path):
    run_cli("--home", str(tmp_path / "a"), "init", "--name", "A")
    run_cli("init", "--home", str(tmp_path / "b"), "--name", "B")
    assert (tmp_path / "a" / "ecosys.db").exists() and (tmp_path / "b" / "ecosys.db").exists()
    assert "A" in run_cli("--home", str(tmp_path / "a"), "init").output
    assert "B" in run_cli("init", "--home", str(tmp_path / "b")).output
    folder = tmp_path / "f"
    folder.mkdir()
    run_cli("task", "add", str(folder), "--home", str(tmp_path / "b"))
    assert json.loads(run_cli("task", "list", "--json", "--home", str(tmp_path / "b")).output)[0]["name"] == "f"
    assert json.loads(run_cli("task", "list", "--json").output) == []  # ECOSYS_HOME is another home


def test_plugins_json_lists_builtins_with_hooks(run_cli):
    rows = json.loads(run_cli("plugins", "--json").output)
    hooks = {h for row in rows for h in row["hooks"]}
    assert {"register_placeholders", "register_grapins", "install_artifact", "choose_link_path"} <= hooks


def test_grapin_list_shows_where_data_is_and_why_not(run_cli, user_home):
    (user_home / ".config" / "kitty").mkdir(parents=True)
    rows = {r["name"]: r for r in json.loads(run_cli("grapin", "list", "--json").output)}
    assert rows["kitty"]["path"] == str(user_home / ".config" / "kitty") and rows["kitty"]["problem"] is None
    assert "does not exist" in rows["GIMP"]["problem"]
    table = run_cli("grapin", "list").output
    assert "kitty" in table and "Firefox" in table


def test_grapin_show_and_resolve(run_cli, user_home):
    profile = user_home / ".mozilla" / "firefox" / "x1y2.default-release"
    profile.mkdir(parents=True)
    (profile.parent / "profiles.ini").write_text("[Profile0]\nPath=x1y2.default-release\nIsRelative=1\nDefault=1\n")
    shown = json.loads(run_cli("grapin", "show", "Firefox", "--json").output)
    assert shown["grapin"]["AppName"] == "Firefox" and shown["path"] == str(profile)
    assert run_cli("grapin", "resolve", "firefox").output.strip() == str(profile)
    assert "resolves:" in run_cli("grapin", "show", "Firefox").output
    (user_home / ".vimrc").write_text("set number")
    (user_home / ".vim").mkdir()
    assert run_cli("grapin", "resolve", "vim").output.splitlines() == [f"vimrc: {user_home / '.vimrc'}",
                                                                       f"vim: {user_home / '.vim'}"]


def test_grapin_resolve_explains_failure(run_cli, user_home):
    result = run_cli("grapin", "resolve", "GIMP")
    assert result.exit_code == 1 and "does not exist" in result.stderr and "Traceback" not in result.output


def test_grapin_validate(run_cli, tmp_path: Path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"AppName": "G", "AppSyncDataFolderPath": "~/g", "SupportedPlatforms": ["Linux"]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"AppName": "B", "AppSyncDataFolderPath": "~/g", "SupportedPlatforms": ["Plan9"]}))
    assert run_cli("grapin", "validate", str(good)).exit_code == 0
    result = run_cli("grapin", "validate", str(good), str(bad))
    assert result.exit_code == 1
    assert f"{bad}: SupportedPlatforms: unknown platform 'Plan9'" in result.stderr


def test_task_add_folder_and_grapin_list_remove(run_cli, user_home, tmp_path: Path):
    folder = tmp_path / "Documents"
    folder.mkdir()
    (user_home / ".config" / "fish").mkdir(parents=True)
    assert run_cli("task", "add", str(folder), "--backup").exit_code == 0
    assert run_cli("task", "add", "--grapin", "fish", "--name", "Shell").exit_code == 0
    tasks = {t["name"]: t for t in json.loads(run_cli("task", "list", "--json").output)}
    assert tasks["Documents"]["kind"] == "folder" and tasks["Documents"]["backup_mode"] is True
    assert tasks["Shell"]["kind"] == "grapin" and tasks["Shell"]["source"] == "fish"
    assert tasks["Shell"]["root"] == str(user_home / ".config" / "fish")
    assert "Shell" in run_cli("task", "list").output
    assert run_cli("task", "remove", "Documents").exit_code == 0
    assert [t["name"] for t in json.loads(run_cli("task", "list", "--json").output)] == ["Shell"]


@pytest.mark.parametrize("args, message", [
    (["task", "add", "/definitely/missing"], "does not exist"),
    (["task", "add"], "give either a PATH or --grapin NAME"),
    (["task", "add", "--grapin", "NoSuchApp"], "no grapin called 'NoSuchApp'"),
    (["task", "add", "--grapin", "GIMP"], "does not exist"),
    (["task", "remove", "nope"], "no sync task called 'nope'"),
    (["grapin", "show", "nope"], "no grapin called 'nope'"),
    (["answer", "OTDL", "yes"], "no pending prompt 'OTDL'"),
])
def test_user_errors_are_one_line_without_traceback(run_cli, user_home, args, message):
    result = run_cli(*args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_prompts_and_answer(run_cli, ecosys_home):
    prompts = Prompts(ecosys_home.prompts)
    prompt_id = prompts.post("CHOOSELINKPATH", "Where should 'Photos' go?")
    listed = json.loads(run_cli("prompts", "--json").output)
    assert listed[0]["flag"] == "CHOOSELINKPATH" and listed[0]["context"] == "Where should 'Photos' go?"
    assert "Where should" in run_cli("prompts").output
    assert run_cli("answer", "CHOOSELINKPATH", "/srv/photos").exit_code == 0
    assert prompts.wait(prompt_id, timeout=1) == "/srv/photos"


def test_real_program_error_has_no_traceback(tmp_path: Path):
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "ecosys.db").write_text("garbage" * 300)
    result = run_ecosys("--home", str(tmp_path / "home"), "task", "list")
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot open the store") and "Traceback" not in result.stderr


def test_real_program_runs(tmp_path: Path):
    result = run_ecosys("--home", str(tmp_path), "init", "--name", "desk")
    assert result.returncode == 0 and "Device name: desk" in result.stdout


def test_task_ignore_shows_adds_removes_and_refuses_a_bad_line(run_cli, tmp_path: Path):
    folder = tmp_path / "code"
    folder.mkdir()
    run_cli("init", "--name", "laptop")
    run_cli("task", "add", str(folder))
    assert "no patterns" in run_cli("task", "ignore", "code").output
    run_cli("task", "ignore", "code", "node_modules/", "*.swp", "(?i)*.tmp")
    assert (folder / ".ecosysignore").read_text() == "node_modules/\n*.swp\n(?i)*.tmp\n"
    assert run_cli("task", "ignore", "code", "--remove", "*.swp").output.splitlines() == ["node_modules/", "(?i)*.tmp"]
    bad = run_cli("task", "ignore", "code", "!")
    assert bad.exit_code == 1 and "line 3" in bad.stderr and ".ecosysignore" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert (folder / ".ecosysignore").read_text() == "node_modules/\n(?i)*.tmp\n", "nothing written"
    shown = json.loads(run_cli("task", "ignore", "code", "--json").output)
    assert shown["patterns"] == ["node_modules/", "(?i)*.tmp"] and shown["defaults"] == []
    (folder / ".ecosysignore").write_text("#include missing.txt\n")
    status = json.loads(run_cli("status", "--json").output)
    assert "missing.txt" in status["tasks"][0]["waiting"]


def test_task_add_grapin_of_several_places(run_cli, user_home: Path, ecosys_home):
    (ecosys_home.root / "plugins").mkdir(exist_ok=True)
    (ecosys_home.root / "plugins" / "vim.json").write_text(json.dumps({
        "FormatVersion": 2, "AppName": "Vim", "SupportedPlatforms": ["Linux", "Darwin"],
        "Paths": [{"Name": "vimrc", "File": True, "Locations": {"Any": ["~/.vimrc"]}},
                  {"Name": "vim", "Locations": {"Any": ["%XDG_CONFIG_HOME%/vim", "~/.vim"]}, "Exclude": ["*.swp"]}]}))
    (user_home / ".vimrc").write_text("set number")
    (user_home / ".vim").mkdir()
    added = run_cli("task", "add", "--grapin", "vim")
    assert added.exit_code == 0, added.output
    assert f"vimrc = {user_home / '.vimrc'}" in added.output and f"vim = {user_home / '.vim'}" in added.output
    missing = run_cli("task", "add", "--grapin", "Vim", "--name", "again")
    assert missing.exit_code == 1 and "overlaps" in missing.stderr
