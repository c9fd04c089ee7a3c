"""Two daemons find each other through real zeroconf (multicast on the loopback interface), then link
over what they found; a daemon that stops is seen as gone."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .daemons import Daemon, link, wait_until


def multicast_on_loopback_works() -> str | None:
    """None when this kernel lets us join the mDNS group on 127.0.0.1, else the reason it does not."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("", 0))
            mreq = socket.inet_aton("224.0.0.251") + socket.inet_aton("127.0.0.1")
            s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
    except OSError as exc:
        return f"multicast on loopback refused by the kernel: {exc}"
    return None


def test_two_daemons_discover_each_other_with_zeroconf(tmp_path: Path):
    reason = multicast_on_loopback_works()
    if reason:
        print(f"SKIPPED: {reason}")
        pytest.skip(reason)
    mdns = ["--mdns-interface", "127.0.0.1"]
    a, b = Daemon(tmp_path, "alpha", mdns), Daemon(tmp_path, "beta", mdns)
    try:
        a.start()
        b.start()
        seen = wait_until(lambda: any(d["device_id"] == b.id for d in a.status()["devices"]), 20,
                          what="alpha to discover beta")
        assert seen
        wait_until(lambda: any(d["device_id"] == a.id for d in b.status()["devices"]), 20, what="beta to discover alpha")
        link(a, b)  # dialled at the address zeroconf gave
        wait_until(lambda: a.connected_to(b) and b.connected_to(a), 20, what="a linked connection")
        devices = {d["device_id"]: d for d in a.status()["devices"]}
        assert devices[b.id]["linked"] and devices[b.id]["address"].endswith(f":{b.port}")
        b.stop()
        wait_until(lambda: not a.connected_to(b), 20, what="alpha to notice beta left")
    finally:
        a.stop()
        b.stop()
