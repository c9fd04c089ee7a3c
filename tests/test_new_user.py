"""What a new user hits first, as their reports would read: Ecosys's own folder is never synced, a
prompt answer that cannot be used is refused while the question stays open, every error is one line,
devices are named as people name them, and the daemon writes a log that `status` names."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from ecosys_core.control_commands import resolve_device
from ecosys_core.device_ids import printable, readable_id
from ecosys_core.errors import EcosysError, NotFound
from ecosys_core.logs import setup_daemon_logging
from ecosys_core.prompts import Prompts
from ecosys_core.store import open_store
from ecosys_core.store.devices import upsert_device
from ecosys_core.store.index import load_entries
from ecosys_core.store.tasks import add_task
from ecosys_core.sync.engine import SyncEngine
from ecosys_core.sync.objects import ObjectStore
from ecosys_core.types import TaskKind

from .conftest import run_ecosys

# -- Ecosys never syncs its own state -------------------------------------------------------------

@pytest.mark.parametrize("where", ["the home", "a folder holding it", "a folder inside it"])
def test_task_add_refuses_ecosys_own_folder(run_cli, ecosys_home, where: str):
    folder = {"the home": ecosys_home.root, "a folder holding it": ecosys_home.root.parent,
              "a folder inside it": ecosys_home.identity}[where]
    result = run_cli("task", "add", str(folder))
    assert result.exit_code == 1 and "Ecosys's own folder" in result.stderr and "\n" not in result.stderr.strip()
    assert json.loads(run_cli("task", "list", "--json").output) == []


def test_an_app_task_may_live_in_the_homes_apps_folder_only(store, ecosys_home):
    data = ecosys_home.apps / "Notes" / "data"
    data.mkdir(parents=True)
    assert add_task(store, name="Notes (application)", root=data, kind=TaskKind.APP).root == data.resolve()
    other = ecosys_home.apps / "Notes" / "other"
    other.mkdir()
    with pytest.raises(EcosysError, match="inside Ecosys's own folder"):
        add_task(store, name="sneaky", root=other, kind=TaskKind.FOLDER)  # only app tasks live there
    with pytest.raises(EcosysError, match="inside Ecosys's own folder"):
        add_task(store, name="apps", root=ecosys_home.apps, kind=TaskKind.APP)


def test_a_home_moved_into_a_task_folder_is_never_indexed(tmp_path: Path):
    """The home moved later (not through `task add`): the scanner skips it wherever it is."""
    root = tmp_path / "Documents"
    root.mkdir()
    (root / "letter.txt").write_text("dear")
    store = open_store(tmp_path / "old-home" / "ecosys.db")
    add_task(store, name="docs", root=root, kind=TaskKind.FOLDER, secure_id="ab" * 16)
    store.close()
    shutil.move(tmp_path / "old-home", root / "ecosys-home")
    (root / "ecosys-home" / "identity").mkdir()
    (root / "ecosys-home" / "identity" / "key.pem").write_text("PRIVATE")
    store = open_store(root / "ecosys-home" / "ecosys.db")
    engine = SyncEngine(store, ObjectStore(root / "ecosys-home" / "objects"), "cd" * 32)
    engine.scan("ab" * 16)
    engine.scan("ab" * 16, ["ecosys-home/identity/key.pem", "letter.txt"])
    with store.session() as session:
        assert set(load_entries(session, 1)) == {"letter.txt"}
    store.close()


# -- prompt answers are checked before they are given ---------------------------------------------

def test_a_yes_no_prompt_refuses_maybe_and_stays_open(run_cli, ecosys_home):
    prompts = Prompts(ecosys_home.prompts)
    prompts.post("LINK", "Device laptop asks to link. Answer yes or no.")
    result = run_cli("answer", "LINK", "maybe")
    assert result.exit_code == 2 and result.stderr.strip() == "error: answer LINK with yes or no, not 'maybe'"
    assert [p.flag for p in prompts.pending()] == ["LINK"]
    assert run_cli("answer", "LINK", "Oui").exit_code == 0
    assert prompts.pending() == []


def test_a_folder_answer_that_cannot_be_used_is_refused_and_the_question_stays_open(run_cli, ecosys_home, tmp_path):
    prompts = Prompts(ecosys_home.prompts)
    prompt_id = prompts.post("CHOOSELINKPATH", "Where should Photos go?")
    (tmp_path / "photo.jpg").write_bytes(b"jpg")
    (tmp_path / "Docs").mkdir()
    run_cli("task", "add", str(tmp_path / "Docs"))
    for bad, why in [(tmp_path / "photo.jpg", "is a file"), (tmp_path / "Docs" / "Photos", "overlaps the folder"),
                     (ecosys_home.root / "Photos", "inside Ecosys's own folder"), ("relative/Photos", "not an absolute")]:
        result = run_cli("answer", "CHOOSELINKPATH", str(bad))
        assert result.exit_code == 2 and why in result.stderr, (bad, result.stderr)
        assert not (tmp_path / "Docs" / "Photos").exists()
    assert [p.id for p in prompts.pending()] == [prompt_id]
    assert run_cli("answer", "CHOOSELINKPATH", str(tmp_path / "new" / "Photos")).exit_code == 0
    assert prompts.wait(prompt_id, timeout=5) == str((tmp_path / "new" / "Photos").resolve())


# -- one line per error -----------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["send", "nope.txt", "--to", "laptop"], "error: Invalid value for '[PATHS]...': Path 'nope.txt' does not exist."
                                             " (see 'ecosys send --help')"),
    (["task", "add", "{file}"], "is a file. (see 'ecosys task add --help')"),
    (["frobnicate"], "error: No such command 'frobnicate'. (see 'ecosys --help')"),
])
def test_usage_errors_are_one_line_with_exit_2(tmp_path: Path, args: list[str], message: str):
    (tmp_path / "photo.jpg").write_bytes(b"x")
    result = run_ecosys("--home", str(tmp_path / "home"), *[a.format(file=tmp_path / "photo.jpg") for a in args])
    assert result.returncode == 2 and message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_status_of_a_home_never_set_up_says_so_and_creates_nothing(tmp_path: Path):
    result = run_ecosys("--home", str(tmp_path / "NEWDIR"), "status")
    assert result.returncode == 1 and "run 'ecosys init' there first" in result.stderr
    assert not (tmp_path / "NEWDIR").exists()


# -- names ----------------------------------------------------------------------------------------------

def test_a_device_is_found_by_any_form_of_its_id_or_by_its_name(store):
    laptop, phone, twin = "a1" * 32, "b2" * 32, "c3" * 32
    upsert_device(store, laptop, name="Laptop", linked=True)
    upsert_device(store, phone, name="phone")
    upsert_device(store, twin, name="laptop")  # an unlinked device calling itself like a linked one
    assert resolve_device(store, "LAPTOP") == laptop  # linked names win
    assert resolve_device(store, "Phone") == phone
    assert resolve_device(store, readable_id(phone).lower().replace("-", "")) == phone
    assert resolve_device(store, phone.upper()) == phone
    with pytest.raises(NotFound) as unknown:
        resolve_device(store, "desktop")
    assert "known devices: Laptop (" in str(unknown.value) and "phone (" in str(unknown.value)


def test_two_unlinked_devices_with_one_name_are_ambiguous(store):
    upsert_device(store, "d4" * 32, name="tv")
    upsert_device(store, "e5" * 32, name="TV")
    with pytest.raises(EcosysError, match="2 devices are called 'tv': give the id instead"):
        resolve_device(store, "tv")


def test_device_names_cannot_drive_the_terminal():
    assert printable("evil\x1b[2J\x07name\n") == "evil[2Jname"


# -- logs -------------------------------------------------------------------------------------------------

def test_the_daemon_log_is_a_rotating_file_in_the_home_that_status_names(run_cli, ecosys_home):
    run_cli("init", "--name", "desk")
    path = setup_daemon_logging(ecosys_home.logs)
    try:
        logging.getLogger("ecosys.sync").info("conflict in task docs: a.txt")
        for handler in logging.getLogger().handlers:
            handler.flush()
        assert "conflict in task docs: a.txt" in path.read_text()
    finally:
        logging.basicConfig(force=True, handlers=[logging.NullHandler()])
    status = json.loads(run_cli("status", "--json").output)
    assert status["device"]["log"] == str(path) and path == ecosys_home.logs / "ecosys.log"
    assert f"log: {path}" in run_cli("status").output
