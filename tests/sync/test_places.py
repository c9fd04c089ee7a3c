"""Tasks of several places (a format 2 grapin's folders and single files): each device keeps them where
its own platform does, the task's paths agree, concurrent edits keep both versions beside the file, and
a peer cannot reach outside the places. Real engines, stores and folders."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ecosys_core.errors import ChangeRefused
from ecosys_core.store.tasks import get_task
from ecosys_core.sync.messages import Modification
from ecosys_core.types import TaskKind, TaskPart

from .harness import SECURE_ID, Device, make_devices, meet

# Linux keeps ~/.vimrc and ~/.vim; Windows ~/_vimrc and ~/vimfiles: the same two things of the task.
LAYOUTS = [(".vimrc", ".vim"), ("_vimrc", "vimfiles")]


def vim_devices(tmp_path: Path) -> list[Device]:
    """Two devices whose task "Vim" is in each one's own places; ``Device.root`` is its user's home."""
    def vim(i: int, home: Path) -> dict:
        rc, folder = LAYOUTS[i]
        (home / folder).mkdir()
        return {"name": "Vim", "kind": TaskKind.GRAPIN, "source": "Vim", "patterns": ("/vim/**/*.swp",),
                "parts": (TaskPart("vimrc", home / rc, True), TaskPart("vim", home / folder))}

    return make_devices(tmp_path, 2, task=vim)


def test_each_device_keeps_the_places_its_platform_uses(tmp_path: Path):
    linux, windows = vim_devices(tmp_path)
    linux.write(".vimrc", b"set number\n")
    linux.write(".vim/colors/dark.vim", b"hi Normal guibg=black\n")
    linux.write(".vim/colors/.dark.vim.swp", b"swap")
    linux.write("unrelated.txt", b"not the task's")
    linux.scan()
    meet(linux, windows)
    assert windows.files() == {"_vimrc": b"set number\n", "vimfiles/colors/dark.vim": b"hi Normal guibg=black\n"}
    windows.write("_vimrc", b"set number\nset ruler\n")
    windows.delete("vimfiles/colors/dark.vim")
    windows.scan()
    meet(linux, windows)
    assert (linux.root / ".vimrc").read_bytes() == b"set number\nset ruler\n"
    assert [p.name for p in (linux.root / ".vim" / "colors").iterdir()] == [".dark.vim.swp"], \
        "an ignored file is neither sent nor deleted"
    (linux.root / ".vim" / "colors" / ".dark.vim.swp").unlink()
    windows.write("vimfiles/a/b.vim", b"x")
    windows.scan()
    meet(linux, windows)
    windows.delete("vimfiles/a/b.vim")
    windows.scan()
    meet(linux, windows)
    assert not (linux.root / ".vim" / "a").exists(), "emptied folders go"
    assert (linux.root / ".vim").is_dir(), "a place's own folder stays"
    task = get_task(linux.store, SECURE_ID)
    assert [p.name for p in task.parts] == ["vimrc", "vim"] and task.root == linux.home.root / "tasks" / SECURE_ID


def test_concurrent_edits_of_a_file_place_keep_both_beside_it(tmp_path: Path):
    linux, windows = vim_devices(tmp_path)
    linux.write(".vimrc", b"base\n")
    linux.scan()
    meet(linux, windows)
    linux.write(".vimrc", b"linux edit\n")
    windows.write("_vimrc", b"windows edit\n")
    linux.scan(), windows.scan()
    meet(linux, windows)
    on_linux = {k: v for k, v in linux.files().items() if k.startswith(".vimrc")}
    on_windows = {k: v for k, v in windows.files().items() if k.startswith("_vimrc")}
    assert sorted(on_linux.values()) == sorted(on_windows.values()) == [b"linux edit\n", b"windows edit\n"]
    copies = [k for k in on_linux if ".sync-conflict-" in k]
    assert len(copies) == 1 and copies[0].startswith(".vimrc.sync-conflict-")
    assert [k for k in on_windows if ".sync-conflict-" in k][0].startswith("_vimrc.sync-conflict-")


@pytest.mark.parametrize("path", ["unrelated.txt", "vimrc/inside", "vim", "../x", "vimrcx"])
def test_a_peer_cannot_write_outside_the_places(tmp_path: Path, path: str):
    linux, windows = vim_devices(tmp_path)
    message = Modification(SECURE_ID, path, {"aaaaaaaaaaaa": 1}, hashlib.blake2b(b"x").hexdigest(), 1, 1,
                           "aaaaaaaaaaaa", False, "", iter([b"x"]), False)
    with pytest.raises(ChangeRefused):
        linux.engine.receive(windows.device_id, message)
    assert sorted(linux.files()) == []


def test_the_watcher_sees_edits_in_every_place(tmp_path: Path):
    import time

    from ecosys_core.store.index import get_entry, task_row
    from ecosys_core.sync.watcher import TaskWatcher

    linux, _ = vim_devices(tmp_path)
    linux.write(".vimrc", b"v1")
    linux.scan()

    def entry(path):
        with linux.store.session() as s:
            return get_entry(s, task_row(s, SECURE_ID).id, path)

    def wait_for(predicate) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return False

    watcher = TaskWatcher(linux.engine, [get_task(linux.store, SECURE_ID)], settle=0.05)
    with watcher:
        linux.write(".vim/plugin/x.vim", b"plugin")
        linux.write(".vimrc", b"v2, longer")
        linux.write("unrelated.txt", b"no")
        assert wait_for(lambda: entry("vim/plugin/x.vim") is not None and entry("vimrc").size == 10)
    assert entry("unrelated.txt") is None
    watcher.remove(SECURE_ID)  # stopping twice is harmless; the watches of the task are gone


def test_a_place_not_there_yet_is_made_by_what_arrives(tmp_path: Path):
    def vim(i: int, home: Path) -> dict:
        rc, folder = LAYOUTS[i]
        if i == 0:
            (home / folder).mkdir()  # the Windows side has no vimfiles yet (the grapin's first location)
        return {"name": "Vim", "kind": TaskKind.GRAPIN, "source": "Vim",
                "parts": (TaskPart("vimrc", home / rc, True), TaskPart("vim", home / folder))}

    linux, windows = make_devices(tmp_path, 2, task=vim)
    windows.scan()  # a place that cannot be listed keeps what the index has: nothing is taken for deleted
    linux.write(".vim/colors/dark.vim", b"dark")
    linux.scan()
    meet(linux, windows)
    assert windows.files() == {"vimfiles/colors/dark.vim": b"dark"}
