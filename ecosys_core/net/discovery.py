"""Find peers on the local network with zeroconf (``_ecosys._tcp.local.``), and be found.

By default the service is announced with every usable IPv4 address of the machine and browsed on all
interfaces; the addresses are looked at again every ``ADDRESS_CHECK_S`` seconds and, when they changed
(a new network, DHCP), zeroconf is restarted on the new ones. ``interfaces`` limits both to the given
addresses (``--mdns-interface``). The TXT record carries the device_id, the protocol version and the
name; appearing and vanishing services are reported through two callbacks. A process that stops sends a
goodbye.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import Awaitable, Callable

import ifaddr
from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from ..background import spawn
from .protocol import PROTOCOL_VERSIONS

SERVICE_TYPE = "_ecosys._tcp.local."
ADDRESS_CHECK_S = 10.0
log = logging.getLogger("ecosys.discovery")

Found = Callable[[str, list[str], int, str], Awaitable[None]]  # device_id, addresses (best first), port, name
Lost = Callable[[str], Awaitable[None]]


def local_networks() -> list[ipaddress.IPv4Interface]:
    """Every IPv4 address of this machine's interfaces, with its network."""
    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str):
                try:
                    out.append(ipaddress.IPv4Interface(f"{ip.ip}/{ip.network_prefix}"))
                except ValueError:
                    continue
    return out


def usable_addresses(networks: list[ipaddress.IPv4Interface]) -> list[str]:
    """The addresses to announce: every IPv4 address but loopback and link-local ones; loopback only when
    there is nothing else (a machine with no network still finds its own other homes)."""
    wanted = sorted({str(n.ip) for n in networks if not n.ip.is_loopback and not n.ip.is_link_local})
    return wanted or sorted({str(n.ip) for n in networks if n.ip.is_loopback})


def best_first(addresses: list[str], networks: list[ipaddress.IPv4Interface]) -> list[str]:
    """``addresses`` of a peer, those on one of our networks first (the others may be unreachable, such
    as a container bridge), loopback last unless it is all there is."""
    def rank(address: str) -> tuple[int, str]:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return (3, address)
        if any(ip in n.network for n in networks if not n.ip.is_loopback):
            return (0, address)
        return (2 if ip.is_loopback else 1, address)

    return sorted(addresses, key=rank)


class Discovery:
    """Announce this device and browse for others; ``interfaces`` limits it (e.g. ``["127.0.0.1"]``)."""

    def __init__(self, device_id: str, name: str, port: int, on_found: Found, on_lost: Lost,
                 interfaces: list[str] | None = None) -> None:
        self.device_id, self.name, self.port = device_id, name, port
        self.on_found, self.on_lost = on_found, on_lost
        self.interfaces = interfaces
        self.announced: list[str] = []
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._names: dict[str, str] = {}  # service name -> device id
        self._tasks: set[asyncio.Task] = set()
        self._watch: asyncio.Task | None = None

    def _addresses(self) -> list[str]:
        if self.interfaces:
            return [a for a in self.interfaces if "." in a]
        return usable_addresses(local_networks())

    async def start(self) -> None:
        """Announce and browse (raises OSError when zeroconf cannot open its sockets)."""
        await self._open(self._addresses())
        if not self.interfaces:
            self._watch = spawn(self._follow_addresses(), "following this machine's addresses")

    async def _open(self, addresses: list[str]) -> None:
        if self.interfaces:
            self._azc = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        else:
            self._azc = AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
        instance = f"ecosys-{self.device_id[:16]}.{SERVICE_TYPE}"
        self._info = AsyncServiceInfo(
            SERVICE_TYPE, instance, port=self.port,
            properties={"device_id": self.device_id, "proto": str(max(PROTOCOL_VERSIONS)), "name": self.name[:60]},
            addresses=[socket.inet_aton(a) for a in addresses] or None, server=f"ecosys-{self.device_id[:16]}.local.",
        )
        await self._azc.async_register_service(self._info)
        self._browser = AsyncServiceBrowser(self._azc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])
        self.announced = addresses
        log.info("announced on %s", ", ".join(addresses) or "no address")

    async def _follow_addresses(self) -> None:
        while True:
            await asyncio.sleep(ADDRESS_CHECK_S)
            now = await asyncio.get_running_loop().run_in_executor(None, self._addresses)
            if now != self.announced:
                log.info("this machine's addresses changed: %s → %s", ", ".join(self.announced) or "none",
                         ", ".join(now) or "none")
                await self._close()
                await self._open(now)

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        task = asyncio.ensure_future(self._handle(zeroconf, service_type, name, state_change))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        log.debug("%s: %s", name, state_change.name)
        if state_change is ServiceStateChange.Removed:
            device = self._names.pop(name, None)
            if device:
                await self.on_lost(device)
            return
        if state_change is ServiceStateChange.Updated:
            # An updated service (a peer whose addresses changed) said goodbye to its old records, which
            # stay cached for one more second: read it once they are gone, or the old address comes back.
            await asyncio.sleep(1.2)
        info = AsyncServiceInfo(service_type, name)
        for _attempt in range(3):  # a service that just (re)appeared may not answer the first query
            if await info.async_request(zeroconf, 3000):
                break
        else:
            log.debug("no answer from %s", name)
            return
        props = {k.decode(): (v.decode(errors="replace") if v else "") for k, v in (info.properties or {}).items()}
        device = props.get("device_id", "")
        if device == self.device_id or len(device) != 64:
            return
        addresses = best_first(info.parsed_addresses(IPVersion.V4Only), local_networks())
        if not addresses or not info.port:
            return
        self._names[name] = device
        await self.on_found(device, addresses, info.port, props.get("name", ""))

    async def _close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None
        if self._azc is not None:
            if self._info is not None:
                await self._azc.async_unregister_service(self._info)
            await self._azc.async_close()
            self._azc = None

    async def stop(self) -> None:
        """Say goodbye and stop browsing."""
        if self._watch is not None:
            self._watch.cancel()
        await self._close()
