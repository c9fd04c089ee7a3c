"""Real ``ecosys up`` processes on 127.0.0.1 for end-to-end tests: each with its own home, folder and
port; every wait is bounded and every process is stopped by the fixture."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from ecosys_core.errors import EcosysError, NotFound
from ecosys_core.net.control import call
from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.prompts import Prompts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (EcosysError, OSError, ValueError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def tree(root: Path) -> dict[str, str]:
    """path → sha256 of every file under root (our temp files excluded)."""
    out = {}
    for folder, _, names in os.walk(root):
        for name in names:
            if name.startswith(".ecosys-tmp-"):
                continue
            path = Path(folder) / name
            try:
                out[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                pass
    return out


def init_home(home: Path, name: str) -> str:
    """What ``ecosys --home HOME init --name NAME`` does, in this process (the command itself is tested in
    test_new_user; as a process it cost each daemon of the suite over a second); return the device id."""
    from ecosys_core.settings import layout
    from ecosys_core.store import open_store
    from ecosys_core.store.settings_kv import set_setting

    where = layout(home)
    where.ensure()
    store = open_store(where.database)
    try:
        set_setting(store, "device_name", name)
    finally:
        store.close()
    return load_or_create_identity(where.identity).device_id


class Daemon:
    """One Ecosys device run as a real process."""

    def __init__(self, base: Path, name: str, extra: list[str] | None = None) -> None:
        self.name = name
        self.home = base / f"{name}-home"
        self.root = base / f"{name}-files"
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.extra = extra or ["--no-mdns"]
        self.peers: list[str] = []
        self.log = base / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.id = init_home(self.home, name)

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "ecosys_core", "--home", str(self.home), *args],
                              capture_output=True, text=True, timeout=timeout)

    def start(self) -> "Daemon":
        peers = [a for p in self.peers for a in ("--peer", p)]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ecosys_core", "--home", str(self.home), "up", "--port", str(self.port),
             "--host", "127.0.0.1", *self.extra, *peers,
             *(() if any(a.startswith("--gui") or a == "--no-gui" for a in self.extra) else ("--gui-address", "127.0.0.1:0"))],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        wait_until(lambda: self.call("status"), 30, what=f"{self.name} to start")
        return self

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        """Stop the daemon with ``sig``; return its exit status (None if it was not running)."""
        code = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                code = self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
            (self.home / "daemon.json").unlink(missing_ok=True)

    def call(self, cmd: str, timeout: float = 30, **args: Any) -> Any:
        return call(self.home / "daemon.json", cmd, args, timeout=timeout)

    def answer(self, flag: str, value: str, timeout: float = 20) -> None:
        prompts = Prompts(self.home / "prompts")

        def give() -> bool:
            try:
                prompts.give(flag, value)
                return True
            except NotFound:
                return False

        wait_until(give, timeout, what=f"a {flag} prompt on {self.name}")

    def status(self) -> dict:
        return self.call("status")

    def connected_to(self, other: "Daemon") -> bool:
        return any(d["device_id"] == other.id and d["connected"] for d in self.status()["devices"])


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = fn()
        except Exception as exc:  # surfaced by the caller
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def link(a: Daemon, b: Daemon) -> None:
    """a asks b to link; b's user says yes."""
    wait_until(lambda: a.connected_to(b) or a.call("connect", address=f"127.0.0.1:{b.port}"), 20, what="a connection")
    thread, box = in_thread(lambda: a.call("link", timeout=40, device=b.id, timeout_s=30))
    b.answer("LINK", "yes")
    thread.join(45)
    assert "error" not in box, box.get("error")


def share(a: Daemon, task: str, b: Daemon, where: Path | None) -> None:
    """a shares ``task`` with b; b's user picks ``where`` (None: a plugin or an existing task decides)."""
    thread, box = in_thread(lambda: a.call("share", timeout=40, task=task, device=b.id, timeout_s=30))
    if where is not None:
        b.answer("CHOOSELINKPATH", str(where))
    thread.join(45)
    assert "error" not in box, box.get("error")


def two_daemons(base: Path, task: str = "docs") -> tuple[Daemon, Daemon]:
    """alpha, with a folder holding ``x.txt`` added as ``task``, and beta dialling it; both started
    (not linked). The caller stops them."""
    a, b = Daemon(base, "alpha"), Daemon(base, "beta")
    (a.root / "x.txt").write_text("x")
    assert a.cli("task", "add", str(a.root), "--name", task).returncode == 0
    b.peers = [f"127.0.0.1:{a.port}"]
    a.start()
    b.start()
    return a, b


@contextmanager
def shared_pair(base: Path, task: str) -> Iterator[tuple[Daemon, Daemon]]:
    """alpha and beta, linked, alpha's folder shared with beta as ``task`` and its first file
    (``small.txt``) synced; both stopped afterwards."""
    a, b = Daemon(base, "alpha"), Daemon(base, "beta")
    try:
        (a.root / "small.txt").write_text("small\n")
        assert a.cli("task", "add", str(a.root), "--name", task).returncode == 0
        b.peers = [f"127.0.0.1:{a.port}"]
        a.start()
        b.start()
        link(a, b)
        share(a, task, b, b.root)
        wait_until(lambda: (b.root / "small.txt").exists(), 30, what="the first sync")
        yield a, b
    finally:
        a.stop()
        b.stop()


def link_insider(d: Daemon, identity: Any, name: str = "insider") -> str:
    """Make ``identity`` a linked device of running daemon ``d`` sharing its only task, as if the person
    had linked and shared it (for hostile tests and benches); return the task's secure_id."""
    from ecosys_core.store import open_store
    from ecosys_core.store.devices import link_task_device, upsert_device

    secure_id = json.loads(d.cli("task", "list", "--json").stdout)[0]["secure_id"]
    store = open_store(d.home / "ecosys.db")
    upsert_device(store, identity.device_id, name=name, linked=True)
    link_task_device(store, secure_id, identity.device_id)
    store.close()
    d.call("reload")  # the daemon reads tasks and links again
    return secure_id


def write_random(path: Path, mib: int) -> None:
    """A file of ``mib`` MiB of random bytes."""
    with open(path, "wb") as fh:
        for _ in range(mib):
            fh.write(os.urandom(1 << 20))


def receiving(d: Daemon, path: str | None = None) -> bool:
    """True while ``d`` is receiving a file (``path``, if given) and has some of it."""
    return any(t["direction"] == "receive" and path in (None, t["path"]) and t["done"] > 0
               for dev in d.status()["devices"] for t in dev["transfers"])
