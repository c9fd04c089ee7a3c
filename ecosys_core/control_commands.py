"""The daemon's control commands (what the CLI asks over the control channel), as a table of handlers.

Each handler takes the request's arguments and returns plain data or raises EcosysError (the CLI prints
its message). The parts a handler uses are given to :func:`command_table` by the composition root.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

from .device_ids import printable, short_id_text
from .errors import EcosysError, NotFound
from .largage import LargageService
from .link_exchange import LinkExchange
from .net.identity import parse_device_id
from .net.peers import Peers, parse_peer
from .share_requests import PROMPT_TIMEOUT
from .store import Store
from .store.devices import list_devices
from .store.tasks import add_task, get_task, list_tasks
from .sync.engine import SyncEngine
from .sync.watcher import TaskWatcher
from .types import TaskKind

Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def resolve_device(store: Store, text: str) -> str:
    """A device id from any form of it (readable, with or without dashes, any case; hex) or from a known
    device's name (case-insensitive; a linked device's name wins over an unlinked one's). NotFound or
    EcosysError, listing the known devices, when it names none or several."""
    try:
        return parse_device_id(text)
    except EcosysError:
        pass
    devices = list_devices(store)
    wanted = text.strip().casefold()
    matches = [d for d in devices if d.name and d.name.casefold() == wanted]
    linked = [d for d in matches if d.linked]
    for candidates in (linked, matches):
        if len(candidates) == 1:
            return candidates[0].device_id
    known = ", ".join(f"{printable(d.name) or '?'} ({short_id_text(d.device_id)}{', linked' if d.linked else ''})"
                      for d in devices) or "none yet"
    if matches:
        raise EcosysError(f"{len(matches)} devices are called {printable(text)!r}: give the id instead; known: {known}")
    raise NotFound(f"no device called {printable(text)!r}; known devices: {known}")


@dataclass
class DaemonParts:
    """What the control commands act on."""

    store: Store
    engine: SyncEngine
    peers: Peers
    links: LinkExchange
    largage: LargageService
    status: Callable[[], dict[str, Any]]
    stop: Callable[[], None]  # ends the daemon
    watcher: Callable[[], TaskWatcher | None]  # None until the daemon runs


def command_table(parts: DaemonParts) -> dict[str, Handler]:
    """Every control command by name."""
    return {**_device_commands(parts), **_task_commands(parts), **_largage_commands(parts)}


def _device_commands(parts: DaemonParts) -> dict[str, Handler]:
    store, peers = parts.store, parts.peers

    def answer_timeout(args: dict[str, Any]) -> float:
        return float(args.get("timeout_s", PROMPT_TIMEOUT + 10))

    async def status(args: dict[str, Any]) -> Any:
        return parts.status()

    async def connect(args: dict[str, Any]) -> Any:
        host, port = parse_peer(args["address"])
        session = await peers.dial(host, port)
        if session is None:
            raise EcosysError(f"cannot connect to {args['address']}")
        return {"device_id": session.peer, "name": session.peer_name}

    async def link(args: dict[str, Any]) -> Any:
        return await parts.links.link(resolve_device(store, args["device"]), answer_timeout(args),
                                      bool(args.get("trust_apps")), bool(args.get("introducer")))

    async def unlink(args: dict[str, Any]) -> Any:
        return await parts.links.unlink(resolve_device(store, args["device"]))

    async def share(args: dict[str, Any]) -> Any:
        return await parts.links.share(args["task"], resolve_device(store, args["device"]), answer_timeout(args))

    async def share_all(args: dict[str, Any]) -> Any:
        """Share the task with every linked device that is not a member yet, all at once; per device the
        result or the error."""
        task = get_task(store, args["task"])
        members = set(await peers.run_blocking(parts.engine.members.live_members, task.secure_id))
        targets = [d for d in list_devices(store) if d.linked and d.device_id not in members]
        results = await asyncio.gather(*(parts.links.share(task.name, d.device_id, answer_timeout(args))
                                         for d in targets), return_exceptions=True)
        out = []
        for device, result in zip(targets, results):
            row = {"device_id": device.device_id, "name": device.name}
            if isinstance(result, EcosysError):
                row["error"] = str(result)
            elif isinstance(result, BaseException):
                raise result
            else:
                row["note"] = result["note"]
            out.append(row)
        return {"task": task.name, "devices": out}

    async def unshare(args: dict[str, Any]) -> Any:
        return await parts.links.unshare(args["task"], resolve_device(store, args["device"]))

    async def stop(args: dict[str, Any]) -> Any:
        asyncio.get_running_loop().call_soon(parts.stop)
        return {}

    return {"status": status, "connect": connect, "link": link, "unlink": unlink, "share": share,
            "share_all": share_all, "unshare": unshare, "stop": stop}


def _task_commands(parts: DaemonParts) -> dict[str, Handler]:
    store, engine, peers = parts.store, parts.engine, parts.peers

    async def reload(args: dict[str, Any]) -> Any:
        """Tasks were added or removed from the command line while the daemon runs."""
        store.touch()
        watcher = parts.watcher()
        if watcher is not None:
            for secure_id in watcher.follow(list_tasks(store)):
                await peers.run_blocking(engine.scan, secure_id)
        peers.changed()
        return {}

    async def scan(args: dict[str, Any]) -> Any:
        """Scan one task (``task``: name or secure_id) or all, under the engine's lock; the reports."""
        tasks = [get_task(store, args["task"])] if args.get("task") else list_tasks(store)
        reports = []
        for task in tasks:
            report = await peers.run_blocking(engine.scan, task.secure_id)
            reports.append({"task": task.name, **vars(report)})
        peers.changed()
        return reports

    async def add(args: dict[str, Any]) -> Any:
        """A folder task (``path``: absolute, ``~`` expanded; optional ``name``, ``backup``), followed at
        once; EcosysError (nothing made) for a folder that is missing, relative or overlaps a task."""
        text = str(args.get("path", "")).strip()
        path = Path(text).expanduser()
        if not text or not path.is_absolute():
            raise EcosysError(f"give the folder's full path (as /home/you/Documents), not {text!r}")
        if not path.is_dir():
            raise NotFound(f"folder {path} does not exist")
        name = str(args.get("name") or "").strip() or path.resolve().name or str(path.resolve())
        task = await peers.run_blocking(lambda: add_task(store, name=name, root=path, kind=TaskKind.FOLDER,
                                                         backup_mode=bool(args.get("backup"))))
        await reload({})
        return {"name": task.name, "secure_id": task.secure_id, "root": str(task.root),
                "backup_mode": task.backup_mode}

    def who(short: str) -> str:
        if parts.engine.device_id.startswith(short):
            return "this device"
        return next((d.name or short_id_text(d.device_id) for d in list_devices(store) if d.device_id.startswith(short)),
                    short)

    def version(v: Any) -> dict[str, Any] | None:
        return None if v is None else {"path": v.path, "size": v.size, "modified_ns": v.modified_ns, "by": who(v.modified_by)}

    async def conflicts(args: dict[str, Any]) -> Any:
        """One page (``offset``, ``limit``) of a task's conflict copies, each beside the current version."""
        task = get_task(store, args["task"])
        total, page = await peers.run_blocking(engine.conflicts, task.secure_id, int(args.get("offset", 0)),
                                               int(args.get("limit", 100)))
        return {"task": task.name, "total": total,
                "conflicts": [{"copy": version(c.copy), "current": version(c.current)} for c in page]}

    async def resolve(args: dict[str, Any]) -> Any:
        """Keep ``keep`` ("copy" or "current") of the conflict copy ``copy`` of task ``task``."""
        task = get_task(store, args["task"])
        report = await peers.run_blocking(engine.resolve_conflict, task.secure_id, str(args["copy"]), str(args["keep"]))
        peers.changed()
        return {"task": task.name, **vars(report)}

    return {"reload": reload, "rescan": scan, "scan": scan, "add_task": add, "conflicts": conflicts,
            "resolve_conflict": resolve}


def _largage_commands(parts: DaemonParts) -> dict[str, Handler]:
    async def send(args: dict[str, Any]) -> Any:
        return await parts.largage.send(resolve_device(parts.store, args["device"]), list(args["paths"]))

    async def offers(args: dict[str, Any]) -> Any:
        return [o.public() for o in parts.largage.offers.values()]

    async def cancel(args: dict[str, Any]) -> Any:
        return await parts.largage.cancel(args.get("offer_id"))

    return {"send": send, "offers": offers, "cancel": cancel}
