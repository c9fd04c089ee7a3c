"""Find peers on the local network with zeroconf (``_ecosys._tcp.local.``), and be found.

The TXT record carries the device_id and the protocol version; appearing and vanishing services are
reported through two callbacks. A process that stops sends a goodbye.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Awaitable, Callable

from zeroconf import IPVersion, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from .protocol import PROTOCOL_VERSIONS

SERVICE_TYPE = "_ecosys._tcp.local."
log = logging.getLogger("ecosys.discovery")

Found = Callable[[str, str, int, str], Awaitable[None]]
Lost = Callable[[str], Awaitable[None]]


class Discovery:
    """Announce this device and browse for others; ``interfaces`` limits it (e.g. ``["127.0.0.1"]``)."""

    def __init__(self, device_id: str, name: str, port: int, on_found: Found, on_lost: Lost,
                 interfaces: list[str] | None = None) -> None:
        self.device_id, self.name, self.port = device_id, name, port
        self.on_found, self.on_lost = on_found, on_lost
        self.interfaces = interfaces
        self._azc: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._info: AsyncServiceInfo | None = None
        self._names: dict[str, str] = {}  # service name -> device id
        self._tasks: set[asyncio.Task] = set()

    def _addresses(self) -> list[bytes]:
        if self.interfaces:
            return [socket.inet_aton(a) for a in self.interfaces if "." in a]
        return []

    async def start(self) -> None:
        kwargs = {}
        if self.interfaces:
            kwargs = {"interfaces": self.interfaces, "ip_version": IPVersion.V4Only}
        self._azc = AsyncZeroconf(**kwargs)
        instance = f"ecosys-{self.device_id[:16]}.{SERVICE_TYPE}"
        self._info = AsyncServiceInfo(
            SERVICE_TYPE, instance, port=self.port,
            properties={"device_id": self.device_id, "proto": str(max(PROTOCOL_VERSIONS)), "name": self.name[:60]},
            addresses=self._addresses() or None, server=f"ecosys-{self.device_id[:16]}.local.",
        )
        await self._azc.async_register_service(self._info)
        self._browser = AsyncServiceBrowser(self._azc.zeroconf, SERVICE_TYPE, handlers=[self._on_change])

    def _on_change(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        task = asyncio.ensure_future(self._handle(zeroconf, service_type, name, state_change))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, zeroconf: Zeroconf, service_type: str, name: str, state_change: ServiceStateChange) -> None:
        if state_change is ServiceStateChange.Removed:
            device = self._names.pop(name, None)
            if device:
                await self.on_lost(device)
            return
        info = AsyncServiceInfo(service_type, name)
        if not await info.async_request(zeroconf, 3000):
            return
        props = {k.decode(): (v.decode() if v else "") for k, v in (info.properties or {}).items()}
        device = props.get("device_id", "")
        if device == self.device_id or len(device) != 64:
            return
        addresses = info.parsed_addresses(IPVersion.V4Only) or info.parsed_addresses()
        if not addresses or not info.port:
            return
        self._names[name] = device
        await self.on_found(device, addresses[0], info.port, props.get("name", ""))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._azc is not None:
            if self._info is not None:
                await self._azc.async_unregister_service(self._info)
            await self._azc.async_close()
