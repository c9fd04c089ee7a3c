"""Ecosys and Syncthing side by side on the same data, alternated, in the same run (issue 17).

For each tool, in each round: two instances on loopback whose only link goes through a byte-counting TCP
relay (wire bytes counted at the same layer for both), an empty folder shared between them, then

- bulk: ``--small`` files of 1–16 KiB in 50 folders plus two ``--big-mib`` random files, written and
  flushed beforehand, are moved into A's shared folder and a scan is asked for; timed until every file is
  complete on B. CPU seconds of each instance during it, and peak RSS of each (VmHWM, the whole run);
- a 100-byte overwrite in the middle of the first big file, then a 10-byte insert at offset 1000, each
  found by the watchers on both sides (Syncthing's watcher delay at its minimum, 1 s): latency from the
  end of the save until B's file shows the edit, wire bytes, and the save's own time (``*_save_s``: the
  insert rewrites the whole file, which the editor pays before either tool can start);
- a new 1 KiB file: latency until complete on B (median of ``--latency-samples``).

Rounds alternate which tool goes first; before each tool's part the disk is flushed and left a minute,
and every run's files are kept until the end, after a quiet spell of ``--first-settle`` seconds before
the first run (``settle()`` in ``_common.py``: on this machine's ext4 a deletion slows every file created
in the next six minutes; ``--no-settle`` skips both waits). Syncthing comes from ``PATH``
(``apt-get install syncthing``). Prints each run and, with ``--json``, one object with both tools'
ranges and the ratios ecosys / syncthing.

    python bench/vs_syncthing.py --json [--rounds 2] [--small 2000] [--big-mib 128] [--latency-samples 5]
"""

from __future__ import annotations

import abc
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable

import httpx
from _common import QUIET_S, kept_runs, parser, report, settle, write_random
from sync import Arrivals, cpu_seconds, peak_rss_mib

from tests.net.daemons import Daemon, free_port, link, share, wait_until

FOLDER = "bench"


class Relay:
    """A TCP relay on 127.0.0.1 to ``target`` that counts the bytes it carries both ways."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.bytes = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        buffer = bytearray(1 << 18)
        view = memoryview(buffer)
        try:
            while True:
                n = src.recv_into(buffer)
                if not n:
                    break
                dst.sendall(view[:n])
                with self._lock:
                    self.bytes += n
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._server.close()


def make_dataset(where: Path, small: int, big_mib: int) -> dict[str, int]:
    """The data set, written and flushed (a shared folder's data is long at rest); path → size."""
    where.mkdir(parents=True)
    expected = {}
    for i in range(small):
        folder = where / f"d{i % 50}"
        folder.mkdir(exist_ok=True)
        size = 1024 + (i * 7919) % (15 * 1024)
        (folder / f"f{i}.bin").write_bytes(os.urandom(size))
        expected[f"d{i % 50}/f{i}.bin"] = size
    for i in range(2):
        write_random(where / f"big{i}.bin", big_mib << 20)
        expected[f"big{i}.bin"] = big_mib << 20
    os.sync()
    return expected


def place(dataset: Path, root: Path) -> None:
    """Move the data set's top-level entries into ``root`` (renames: the files appear at once)."""
    for entry in sorted(dataset.iterdir()):
        os.rename(entry, root / entry.name)


class Tool(abc.ABC):
    """What the bench needs from one tool: two instances, A and B, sharing ``FOLDER``."""

    name = ""
    a_root: Path
    b_root: Path
    a_pid: int
    b_pid: int
    relay: Relay

    @abc.abstractmethod
    def scan(self) -> None:
        """Ask A to scan its folder now (without waiting for the scan)."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop both instances and the relay."""


def _rest(client: httpx.Client, path: str, **params: str) -> Any:
    """A Syncthing REST answer as JSON; ValueError while the instance cannot answer yet."""
    try:
        response = client.get(path, params=params)
    except httpx.HTTPError as exc:
        raise ValueError(str(exc)) from None
    if response.status_code != 200:
        raise ValueError(f"{path}: HTTP {response.status_code}")
    return response.json()


class Syncthing(Tool):
    """Two ``syncthing serve`` processes configured by file: no discovery, relays, NAT or reporting; A
    dials B through the relay; the folder watched with a 1 s delay. Each runs without its monitor
    process (``STMONITORED``), so CPU and memory are those of the one process that syncs, as for Ecosys."""

    name = "syncthing"

    def __init__(self, base: Path) -> None:
        self.homes = [base / "st-a", base / "st-b"]
        self.a_root, self.b_root = base / "st-a-files", base / "st-b-files"
        self.gui = [free_port(), free_port()]
        listen = [free_port(), free_port()]
        self.key = "ecosys-bench-key"
        ids = []
        for home in self.homes:
            subprocess.run(["syncthing", "generate", f"--home={home}", "--no-default-folder"], check=True,
                           capture_output=True)
            ids.append(subprocess.run(["syncthing", "serve", f"--home={home}", "--device-id"], check=True,
                                      capture_output=True, text=True).stdout.strip())
        self.relay = Relay(listen[1])
        for i, home in enumerate(self.homes):
            root = (self.a_root, self.b_root)[i]
            root.mkdir()
            peer_address = f"tcp://127.0.0.1:{self.relay.port}" if i == 0 else "dynamic"
            self._configure(home / "config.xml", ids[i], ids[1 - i], peer_address, listen[i], self.gui[i], root)
        self.procs = [subprocess.Popen(["syncthing", "serve", f"--home={home}", "--no-browser", "--no-restart",
                                        "--no-upgrade", f"--logfile={home / 'log.txt'}"],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                       env={**os.environ, "STNODEFAULTFOLDER": "1", "STMONITORED": "1"})
                      for home in self.homes]
        self.a_pid, self.b_pid = self.procs[0].pid, self.procs[1].pid
        self.clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": self.key},
                                     timeout=30) for port in self.gui]
        for client in self.clients:
            wait_until(lambda c=client: _rest(c, "/rest/system/ping"), 60, 0.2, "syncthing up")
        wait_until(lambda: _rest(self.clients[0], "/rest/system/connections")["connections"][ids[1]]["connected"],
                   60, 0.2, "syncthing connected")
        for client in self.clients:
            wait_until(lambda c=client: _rest(c, "/rest/db/status", folder=FOLDER)["state"] == "idle",
                       60, 0.2, "syncthing folder idle")

    def _configure(self, config: Path, me: str, peer: str, peer_address: str, listen: int, gui: int,
                   root: Path) -> None:
        tree = ET.parse(config)
        top = tree.getroot()
        options = top.find("options")
        assert options is not None
        settings = {"listenAddress": f"tcp://127.0.0.1:{listen}", "globalAnnounceEnabled": "false",
                    "localAnnounceEnabled": "false", "relaysEnabled": "false", "natEnabled": "false",
                    "startBrowser": "false", "urAccepted": "-1", "autoUpgradeIntervalH": "0",
                    "crashReportingEnabled": "false", "setLowPriority": "false"}
        for key, value in settings.items():
            node = options.find(key)
            if node is None:
                node = ET.SubElement(options, key)
            node.text = value
        gui_node = top.find("gui")
        assert gui_node is not None
        gui_node.find("address").text = f"127.0.0.1:{gui}"  # type: ignore[union-attr]
        gui_node.find("apikey").text = self.key  # type: ignore[union-attr]
        device = ET.SubElement(top, "device", id=peer, name="peer", compression="metadata", introducer="false")
        ET.SubElement(device, "address").text = peer_address
        folder = ET.Element("folder", id=FOLDER, label=FOLDER, path=str(root), type="sendreceive",
                            rescanIntervalS="3600", fsWatcherEnabled="true", fsWatcherDelayS="1")
        for device_id in (me, peer):
            ET.SubElement(folder, "device", id=device_id, introducedBy="")
        top.insert(0, folder)
        tree.write(config)

    def scan(self) -> None:
        self.clients[0].post("/rest/db/scan", params={"folder": FOLDER})

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        for client in self.clients:
            client.close()
        self.relay.close()


class Ecosys(Tool):
    """Two ``ecosys up`` daemons; B dials A through the relay; A's empty folder shared with B."""

    name = "ecosys"

    def __init__(self, base: Path) -> None:
        self.a, self.b = Daemon(base, "alpha"), Daemon(base, "beta")
        self.a_root, self.b_root = self.a.root, self.b.root
        self.relay = Relay(self.a.port)
        assert self.a.cli("task", "add", str(self.a.root), "--name", FOLDER).returncode == 0
        self.b.peers = [f"127.0.0.1:{self.relay.port}"]
        self.a.start()
        self.b.start()
        wait_until(lambda: self.a.connected_to(self.b), 30, 0.1, "ecosys connected")
        link(self.a, self.b)
        share(self.a, FOLDER, self.b, self.b.root)
        assert self.a.proc is not None and self.b.proc is not None
        self.a_pid, self.b_pid = self.a.proc.pid, self.b.proc.pid

    def scan(self) -> None:
        threading.Thread(target=lambda: self.a.call("rescan", timeout=300), daemon=True).start()

    def stop(self) -> None:
        self.a.stop()
        self.b.stop()
        self.relay.close()


def edit_arrived(path: Path, offset: int, data: bytes, size: int) -> Callable[[], bool]:
    def check() -> bool:
        with open(path, "rb") as fh:
            fh.seek(offset)
            return os.fstat(fh.fileno()).st_size == size and fh.read(len(data)) == data
    return check


def timed_edit(tool: Tool, edit: Callable[[Path], tuple[int, bytes, int]]) -> tuple[float, float, int]:
    """Apply ``edit`` to A's first big file; (seconds from the end of the save until B's copy shows it,
    seconds the save itself took, wire bytes meanwhile). The save is the editor's part: rewriting a
    128 MiB file for an insert takes the bench 0.4-2 s here before either tool can do anything."""
    time.sleep(2)  # the previous step's acknowledgements are counted with it, not here
    before = tool.relay.bytes
    start = time.perf_counter()
    offset, data, size = edit(tool.a_root / "big0.bin")
    saved = time.perf_counter()
    wait_until(edit_arrived(tool.b_root / "big0.bin", offset, data, size), 120, 0.005, "edit on B")
    elapsed = time.perf_counter() - saved
    time.sleep(2)
    return elapsed, saved - start, tool.relay.bytes - before


def overwrite(path: Path) -> tuple[int, bytes, int]:
    data, size = os.urandom(100), path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(data)
    return size // 2, data, size


def insert(path: Path) -> tuple[int, bytes, int]:
    data = os.urandom(10)
    content = path.read_bytes()
    path.write_bytes(content[:1000] + data + content[1000:])
    return 1000, data, len(content) + 10


def run_tool(kind: type[Tool], base: Path, args: Any) -> dict[str, float]:
    """One tool's part of a round, from a fresh data set and fresh instances."""
    dataset = base / "dataset"
    expected = make_dataset(dataset, args.small, args.big_mib)
    if not args.no_settle:
        settle()
    tool = kind(base)  # type: ignore[call-arg]
    out: dict[str, float] = {}
    try:
        time.sleep(1)
        cpu = cpu_seconds(tool.a_pid), cpu_seconds(tool.b_pid)
        wire = tool.relay.bytes
        start = time.perf_counter()
        place(dataset, tool.a_root)
        tool.scan()
        wait_until(Arrivals(tool.b_root, expected), 900, 0.02, "initial sync")
        out["initial_sync_s"] = round(time.perf_counter() - start, 2)
        out["cpu_s_sender"] = round(cpu_seconds(tool.a_pid) - cpu[0], 2)
        out["cpu_s_receiver"] = round(cpu_seconds(tool.b_pid) - cpu[1], 2)
        out["cpu_s_total"] = round(out["cpu_s_sender"] + out["cpu_s_receiver"], 2)
        out["initial_wire_mib"] = round((tool.relay.bytes - wire) / 2**20, 1)
        out["peak_rss_mib_sender"] = peak_rss_mib(tool.a_pid)
        out["peak_rss_mib_receiver"] = peak_rss_mib(tool.b_pid)
        for name, edit in (("overwrite", overwrite), ("insert", insert)):
            latency, save, out[f"{name}_wire_bytes"] = timed_edit(tool, edit)
            out[f"{name}_latency_s"] = round(latency, 3)
            out[f"{name}_save_s"] = round(save, 3)
        latencies = []
        for i in range(args.latency_samples):
            data, target = os.urandom(1024), tool.b_root / f"latency{i}.txt"
            t0 = time.perf_counter()
            (tool.a_root / f"latency{i}.txt").write_bytes(data)
            wait_until(lambda: target.exists() and target.read_bytes() == data, 60, 0.002, "new file on B")
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.3)
        out["new_file_latency_s"] = round(statistics.median(latencies), 3)
    finally:
        tool.stop()
    return out


def span(values: list[float]) -> list[float]:
    return [min(values), max(values)]


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--small", type=int, default=2000)
    p.add_argument("--big-mib", type=int, default=128)
    p.add_argument("--latency-samples", type=int, default=5)
    p.add_argument("--no-settle", action="store_true", help="start at once (see settle() in _common.py)")
    p.add_argument("--first-settle", type=float, default=QUIET_S,
                   help="seconds of quiet before the first run (see settle() in _common.py)")
    args = p.parse_args()
    if shutil.which("syncthing") is None:
        raise SystemExit("syncthing is not on PATH: apt-get install syncthing")
    runs: dict[str, list[dict[str, float]]] = {"syncthing": [], "ecosys": []}
    if not args.no_settle:
        settle(args.first_settle)
    with kept_runs() as tmp:
        for round_no in range(args.rounds):
            order = [Syncthing, Ecosys] if round_no % 2 == 0 else [Ecosys, Syncthing]
            for kind in order:
                base = tmp / f"round{round_no + 1}-{kind.name}"
                base.mkdir()
                figures = run_tool(kind, base, args)
                figures["round"] = round_no + 1
                runs[kind.name].append(figures)
                if not args.json:
                    print(kind.name, figures, flush=True)
    results: dict[str, Any] = {"runs": runs, "syncthing_version": subprocess.run(
        ["syncthing", "--version"], capture_output=True, text=True).stdout.split(" ")[1]}
    keys = [k for k in runs["ecosys"][0] if k != "round"]
    for tool in runs:
        results[tool] = {k: span([r[k] for r in runs[tool]]) for k in keys}
    # ratios per round (same hour, same disk state), ecosys / syncthing
    ratios = {k: [round(e[k] / s[k], 2) for e, s in zip(runs["ecosys"], runs["syncthing"]) if s[k]] for k in keys}
    results["ratio_ecosys_to_syncthing"] = {k: span(v) for k, v in ratios.items() if v}
    report(results, args.json)


if __name__ == "__main__":
    main()
