"""Two daemons on two hosts of one LAN (network namespaces joined by a veth pair), each started with
default flags as a new user would (`ecosys up`, no --mdns-interface, no --peer): zeroconf announces
their real addresses, they find each other, and they link over what they found."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ecosys_core.net.identity import load_or_create_identity
from ecosys_core.prompts import Prompts

from .daemons import wait_until
from .netns import cannot_make_namespaces, two_hosts


class HostDaemon:
    """``ecosys`` run inside network namespace ``ns``: the daemon and every command."""

    def __init__(self, base: Path, name: str, ns: str) -> None:
        self.name, self.ns = name, ns
        self.home = base / f"{name}-home"
        self.log = base / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        assert self.cli("init", "--name", name).returncode == 0
        self.id = load_or_create_identity(self.home / "identity").device_id

    def command(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns, sys.executable, "-m", "ecosys_core", "--home", str(self.home), *args]

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout)

    def start(self, *extra: str) -> None:
        self.proc = subprocess.Popen(self.command("up", *extra), stdout=open(self.log, "a"), stderr=subprocess.STDOUT)

    def devices(self) -> list[dict]:
        result = self.cli("devices", "--json")
        return json.loads(result.stdout) if result.returncode == 0 else []

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def test_two_daemons_with_default_flags_find_each_other_and_link(tmp_path: Path):
    reason = cannot_make_namespaces()
    if reason:
        print(f"SKIPPED: cannot run two hosts here: {reason}")
        pytest.skip(f"cannot run two hosts here: {reason}")
    with two_hosts() as ((ns_a, address_a), (ns_b, address_b)):
        a, b = HostDaemon(tmp_path, "alpha", ns_a), HostDaemon(tmp_path, "beta", ns_b)
        try:
            a.start()
            b.start()
            seen = wait_until(lambda: next((d for d in a.devices() if d["device_id"] == b.id), None), 40,
                              0.5, "alpha to discover beta")
            assert seen["address"] == f"{address_b}:22800" and seen["name"] == "beta"
            wait_until(lambda: any(d["device_id"] == a.id for d in b.devices()), 40, 0.5, "beta to discover alpha")
            linking = subprocess.Popen(a.command("link", "beta", "--timeout", "30"), stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True)
            prompts = Prompts(b.home / "prompts")
            wait_until(lambda: prompts.give("LINK", "yes"), 30, 0.2, "the LINK prompt on beta")
            out, err = linking.communicate(timeout=60)
            assert linking.returncode == 0 and "Linked with beta" in out, err
            wait_until(lambda: any(d["device_id"] == a.id and d["linked"] and d["connected"] for d in b.devices()),
                       30, 0.5, "beta to see alpha linked and connected")
        finally:
            a.stop()
            b.stop()
            for d in (a, b):
                print(f"--- {d.name} log ---\n{d.log.read_text()[-3000:] if d.log.exists() else ''}")


def test_a_new_address_is_announced_without_a_restart(tmp_path: Path):
    reason = cannot_make_namespaces()
    if reason:
        print(f"SKIPPED: cannot run two hosts here: {reason}")
        pytest.skip(f"cannot run two hosts here: {reason}")
    with two_hosts("10.232.0") as ((ns_a, _), (ns_b, address_b)):
        a, b = HostDaemon(tmp_path, "alpha", ns_a), HostDaemon(tmp_path, "beta", ns_b)
        try:
            a.start("-v")
            b.start("-v")
            wait_until(lambda: any(d["device_id"] == b.id and d["address"] == f"{address_b}:22800"
                                   for d in a.devices()), 40, 0.5, "alpha to discover beta")
            link_name = subprocess.run(["ip", "-n", ns_b, "-o", "link", "show", "type", "veth"], capture_output=True,
                                       text=True, check=True).stdout.split(":")[1].strip().split("@")[0]
            # beta moves to another address of the same network (as after a new DHCP lease): the new one is
            # added, then the old one removed, the new one staying (promoted rather than removed with it)
            subprocess.run(["ip", "netns", "exec", ns_b, "sh", "-c",
                            f"echo 1 > /proc/sys/net/ipv4/conf/{link_name}/promote_secondaries"], check=True)
            subprocess.run(["ip", "-n", ns_b, "addr", "add", "10.232.0.9/24", "dev", link_name], check=True)
            subprocess.run(["ip", "-n", ns_b, "addr", "del", f"{address_b}/24", "dev", link_name], check=True)
            wait_until(lambda: any(d["device_id"] == b.id and d["address"] == "10.232.0.9:22800" for d in a.devices()),
                       60, 0.5, "alpha to learn beta's new address")
        finally:
            a.stop()
            b.stop()
