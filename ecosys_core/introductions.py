"""Introducers (Syncthing's word): a person with n devices links each new one once, not n-1 times.

``ecosys link DEVICE --introducer`` makes DEVICE an introducer *here*: DEVICE then tells this device
(INTRODUCE) which devices it is linked with, and this device links them without asking, pinned by the
certificate digests DEVICE vouches for. What an introducer can and cannot do is in docs/sync.md
("Introducers"); in short it can only add links:

- it never shares a task (tasks still go through SHARE and the person's CHOOSELINKPATH answer, unless
  this device already holds the task under the same secure_id);
- it never brings back a device the person unlinked here, and never unlinks one;
- what it introduces is not an introducer itself, and ``--trust-apps`` is never passed on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable

from pluggy import HookRelay

from .device_ids import printable, readable_id
from .errors import EcosysError, NotFound
from .linking import UNLINKED_HERE, link_device
from .net.peers import parse_peer
from .net.session import PeerSession
from .store import Store
from .store.devices import check_device_id, get_device, list_devices, upsert_device
from .store.settings_kv import get_setting, set_setting

log = logging.getLogger("ecosys.daemon")
INTRODUCER = "introducer:"  # setting key prefix: this device takes the device's introductions
INTRODUCES_TO = "introduces_to:"  # setting key prefix: the device takes ours (it linked us with --introducer)
INTRODUCED_BY = "introduced_by:"  # setting key prefix: which introducer vouched for a device linked here


def is_introducer(store: Store, device_id: str) -> bool:
    """True when the person made ``device_id`` an introducer here."""
    return get_setting(store, f"{INTRODUCER}{device_id}") == "1"


def set_introducer(store: Store, device_id: str, on: bool) -> None:
    """Record whether ``device_id`` is an introducer here."""
    set_setting(store, f"{INTRODUCER}{device_id}", "1" if on else "")


def introduces_to(store: Store, device_id: str) -> bool:
    """True when ``device_id`` linked this device as its introducer."""
    return get_setting(store, f"{INTRODUCES_TO}{device_id}") == "1"


def set_introduces_to(store: Store, device_id: str, on: bool) -> None:
    """Record whether this device introduces its links to ``device_id``."""
    set_setting(store, f"{INTRODUCES_TO}{device_id}", "1" if on else "")


def introduced_by(store: Store, device_id: str) -> str | None:
    """The introducer that vouched for ``device_id`` here, if it was linked that way."""
    return get_setting(store, f"{INTRODUCED_BY}{device_id}") or None


def introduction(store: Store, me: str, to: str) -> dict[str, Any]:
    """The INTRODUCE frame for ``to``: every device linked here but ``to`` (id, name, last address)."""
    devices = [{"device_id": d.device_id, "name": d.name[:200], "address": d.last_address or ""}
               for d in list_devices(store) if d.linked and d.device_id != to][:256]
    return {"flag": "INTRODUCE", "device_id": me, "devices": devices}


class Introductions:
    """Sends this device's links to the devices that took it as introducer, and takes introductions
    from the devices the person made introducers here."""

    def __init__(self, me: str, store: Store, hook: HookRelay, run_blocking: Callable[..., Awaitable[Any]],
                 link_back: Callable[[str, str], Awaitable[None]]) -> None:
        self.me = me
        self.store, self.hook = store, hook
        self.run_blocking = run_blocking
        self.link_back = link_back  # asks an introduced device to link with this one too

    async def send(self, session: PeerSession) -> None:
        """Introduce this device's links to ``session``'s device, if it took this device as introducer."""
        if await self.run_blocking(introduces_to, self.store, session.peer):
            frame = await self.run_blocking(introduction, self.store, self.me, session.peer)
            session.answer(("INTRODUCE", frame, b""))

    async def on_introduce(self, session: PeerSession, h: dict[str, Any]) -> list[str]:
        """Link the devices ``session``'s device introduces, if it is an introducer here; the ids linked."""
        if not await self.run_blocking(is_introducer, self.store, session.peer):
            log.info("ignored an introduction from %s: not an introducer here", session.label)
            return []
        entries = h.get("devices")
        if not isinstance(entries, list):
            return []
        linked = []
        for entry in entries:
            device_id = await self.run_blocking(self._take, session.peer, entry)
            if device_id is not None:
                linked.append(device_id)
                log.info("linked %s, introduced by %s", readable_id(device_id), session.label)
        await asyncio.gather(*(self.link_back(device_id, session.peer) for device_id in linked))
        return linked

    def _take(self, introducer: str, entry: Any) -> str | None:
        """(Blocking.) Link the device ``entry`` names, unless it is this one, linked already, or the
        person unlinked it here; None when nothing was linked."""
        if not isinstance(entry, dict):
            return None
        try:
            device_id = check_device_id(str(entry.get("device_id", "")))
        except EcosysError:
            return None
        if device_id == self.me or get_setting(self.store, f"{UNLINKED_HERE}{device_id}") == "1":
            return None
        try:
            if get_device(self.store, device_id).linked:
                return None
        except NotFound:
            pass
        address = entry.get("address")
        if not isinstance(address, str) or not address:
            address = None
        else:
            try:
                parse_peer(address)
            except EcosysError:
                address = None
        upsert_device(self.store, device_id, address=address)
        link_device(self.store, self.hook, device_id, printable(str(entry.get("name", "")))[:200])
        set_setting(self.store, f"{INTRODUCED_BY}{device_id}", introducer)
        return device_id
