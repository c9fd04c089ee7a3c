"""What a new user hits with real daemons: one daemon per home, a clear word when the port is taken,
conflict copies that travel in the meeting that made them, a folder answer the daemon cannot use that
creates nothing, and a device that can be linked again after an unlink."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

from ecosys_core.prompts import Prompts

from .daemons import (
    Daemon,
    in_thread,
    link,
    share,
    shared_pair,
    two_daemons,
    wait_until,
)


def test_a_second_daemon_on_one_home_exits_naming_the_first_and_changes_nothing(tmp_path: Path):
    d = Daemon(tmp_path, "alpha")
    d.start()
    try:
        before = (d.home / "daemon.json").read_text()
        second = subprocess.run([sys.executable, "-m", "ecosys_core", "--home", str(d.home), "up", "--no-mdns",
                                 "--port", "0"], capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1 and f"pid {d.proc.pid}, port {d.port}" in second.stderr
        assert (d.home / "daemon.json").read_text() == before and d.status()["device"]["name"] == "alpha"
    finally:
        d.stop()
    d.start()  # the lock went with the process
    d.stop()


def test_a_port_in_use_is_one_line(tmp_path: Path):
    d = Daemon(tmp_path, "alpha")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "ecosys_core", "--home", str(d.home), "up", "--no-mdns",
                                 "--host", "127.0.0.1", "--port", str(port)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "choose one with --port" in result.stderr


def test_a_conflict_copy_travels_in_the_meeting_that_made_it(tmp_path: Path):
    with shared_pair(tmp_path, "docs") as (a, b):
        (a.root / "plan.txt").write_text("first\n")
        wait_until(lambda: (b.root / "plan.txt").exists(), 20, what="the first version")
        b.stop()
        (a.root / "plan.txt").write_text("alpha's edit\n")
        (b.root / "plan.txt").write_text("beta's edit, made offline\n")
        time.sleep(1.5)  # alpha indexes its edit while beta is away
        b.start()
        wait_until(lambda: a.connected_to(b), 20, what="the reconnection")
        reconnected = time.monotonic()

        def copies(d: Daemon) -> list[str]:
            return sorted(p.name for p in d.root.glob("plan.sync-conflict-*.txt"))

        wait_until(lambda: copies(a) and copies(a) == copies(b), 10, 0.05, "the conflict copy on both")
        assert time.monotonic() - reconnected < 2.0
        texts = {(a.root / "plan.txt").read_text(), (a.root / copies(a)[0]).read_text()}
        assert texts == {"alpha's edit\n", "beta's edit, made offline\n"}


def test_a_folder_answer_the_daemon_cannot_use_refuses_the_share_and_creates_nothing(tmp_path: Path):
    a, b = Daemon(tmp_path, "alpha"), Daemon(tmp_path, "beta")
    (a.root / "x.txt").write_text("x")
    assert a.cli("task", "add", str(a.root), "--name", "docs").returncode == 0
    (b.root / "mine").mkdir()
    assert b.cli("task", "add", str(b.root / "mine"), "--name", "mine").returncode == 0
    b.peers = [f"127.0.0.1:{a.port}"]
    a.start()
    b.start()
    try:
        link(a, b)
        thread, box = in_thread(lambda: a.call("share", timeout=40, task="docs", device=b.id, timeout_s=30))
        prompts = Prompts(b.home / "prompts")  # a front end that skips the checks `ecosys answer` makes
        wait_until(lambda: prompts.give("CHOOSELINKPATH", str(b.root / "mine" / "docs")), 20, what="the prompt")
        thread.join(45)
        assert "overlaps the folder of task 'mine'" in str(box.get("error"))
        assert not (b.root / "mine" / "docs").exists()
        assert [t["name"] for t in json.loads(b.cli("task", "list", "--json").stdout)] == ["mine"]
    finally:
        a.stop()
        b.stop()


def test_after_an_unlink_the_device_is_linked_again_by_name_and_told_what_was_shared(tmp_path: Path):
    a, b = two_daemons(tmp_path)
    try:
        link(a, b)
        share(a, "docs", b, b.root)
        assert a.cli("unlink", "beta").returncode == 0
        row = wait_until(lambda: next((d for d in a.status()["devices"] if d["device_id"] == b.id), None), 10)
        assert row["name"] == "beta" and row["address"] and not row["linked"]
        thread, box = in_thread(lambda: a.cli("link", "beta", "--timeout", "20"))
        b.answer("LINK", "yes")
        thread.join(40)
        result = box["result"]
        assert result.returncode == 0, result.stderr
        assert "Before the unlink it shared: docs. Nothing was shared again" in result.stdout
        assert "answer there with 'ecosys answer LINK yes'" in result.stderr
    finally:
        a.stop()
        b.stop()
