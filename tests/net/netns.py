"""Two network namespaces joined by a veth pair, made by the test itself (``ip netns``, root only), so
two daemons run as on two machines of one LAN: their own interfaces and addresses, multicast between
them, nothing shared but the file system. Everything made is removed afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from typing import Iterator


def cannot_make_namespaces() -> str | None:
    """None when this machine lets the tests make namespaces, else why not."""
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"ecosys-probe-{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"'ip netns add' failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=20)


@contextmanager
def two_hosts(subnet: str = "10.231.0") -> Iterator[tuple[tuple[str, str], tuple[str, str]]]:
    """((namespace, address), (namespace, address)) of two hosts on ``subnet``.0/24, loopback up in each."""
    tag = f"{os.getpid() % 100000}"
    hosts = [(f"ecosys-a-{tag}", f"{subnet}.1"), (f"ecosys-b-{tag}", f"{subnet}.2")]
    links = [f"eca{tag}", f"ecb{tag}"]
    try:
        for ns, _ in hosts:
            _ip("netns", "add", ns)
        _ip("link", "add", links[0], "type", "veth", "peer", "name", links[1])
        for (ns, address), link in zip(hosts, links):
            _ip("link", "set", link, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{address}/24", "dev", link)
            _ip("-n", ns, "link", "set", link, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield hosts[0], hosts[1]
    finally:
        for ns, _ in hosts:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
