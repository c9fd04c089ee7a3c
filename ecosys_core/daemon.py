"""The daemon (``ecosys up``): the composition root wiring store, engine, watcher, transport, discovery
and the control channel. Everything here is orchestration; the rules live in the engine and linking."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Callable

from .errors import EcosysError, NotFound
from .largage import LargageService
from .linking import (
    AppLinkDecision,
    accept_task_offer,
    adopt_secure_id,
    choose_task_root,
    decide_app_link,
    link_device,
    unlink_device,
)
from .net.control import ControlServer
from .net.discovery import Discovery
from .net.identity import load_or_create_identity, parse_device_id
from .net.protocol import Frame
from .net.session import PeerSession
from .net.transport import Incoming, Refused, accept, connect, listen
from .plugins import get_plugin_manager
from .prompts import Prompts
from .settings import HomeLayout
from .store import open_store
from .store.devices import get_device, link_task_device, list_devices, task_device_ids, upsert_device
from .store.settings_kv import get_setting
from .store.tasks import get_task, list_tasks
from .sync.engine import SyncEngine
from .sync.fsio import clear_staging
from .sync.objects import ObjectStore
from .sync.watcher import TaskWatcher
from .types import TaskKind, TaskOffer

log = logging.getLogger("ecosys.daemon")
PROMPT_TIMEOUT = 120.0
YES = {"y", "yes", "o", "oui", "ok", "accept", "1", "true"}


def read_config(home: HomeLayout) -> dict[str, Any]:
    """``ECOSYS_HOME/config.json`` (optional): ``{"peers": ["host:port"], "port": 22000, "mdns": true}``."""
    path = home.root / "config.json"
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise EcosysError(f"{path}: invalid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EcosysError(f"{path}: expected a JSON object")
    return data


def parse_peer(text: str) -> tuple[str, int]:
    """``host:port`` → (host, port); raise EcosysError."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise EcosysError(f"not a peer address (HOST:PORT): {text!r}")
    return host.strip("[]"), int(port)


class Node:
    """One running device: its sessions and the operations the control channel and peers ask for."""

    def __init__(self, home: HomeLayout, *, port: int = 0, host: str = "0.0.0.0", peers: list[str] = (),
                 mdns: bool = True, interfaces: list[str] | None = None) -> None:
        self.home = home.ensure()
        self.store = open_store(home.database)
        self.plugins = get_plugin_manager(home)
        self.identity = load_or_create_identity(home.identity)
        self.me = self.identity.device_id
        self.name = get_setting(self.store, "device_name") or socket.gethostname()
        clear_staging(home.staging)  # one daemon per home: what is there was left by a crash
        self.engine = SyncEngine(self.store, ObjectStore(home.objects), self.me, self.plugins.hook, home.staging)
        self.prompts = Prompts(home.prompts)
        self.host, self.port = host, port
        self.static_peers = [parse_peer(p) for p in peers]
        self.mdns, self.interfaces = mdns, interfaces
        self.sessions: dict[str, PeerSession] = {}
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ecosys-engine")
        self.loop: asyncio.AbstractEventLoop
        self._waiting: dict[tuple[str, str], asyncio.Future] = {}
        self._dialing: set[str] = set()
        self._linked_cache: dict[str, bool] = {}
        self.watcher: TaskWatcher | None = None
        self.discovery: Discovery | None = None
        self.largage = LargageService(self)

    # -- plumbing ------------------------------------------------------------------------------
    async def run_engine(self, fn: Callable, *args: Any) -> Any:
        """Run a blocking call (engine, store, prompts) in the worker threads."""
        return await self.loop.run_in_executor(self.pool, fn, *args)

    def is_linked(self, device_id: str) -> bool:
        if device_id not in self._linked_cache:
            try:
                self._linked_cache[device_id] = get_device(self.store, device_id).linked
            except NotFound:
                self._linked_cache[device_id] = False
        return self._linked_cache[device_id]

    def _forget_cache(self, device_id: str) -> None:
        self._linked_cache.pop(device_id, None)

    def changed(self, except_peer: str | None = None) -> None:
        """Something became pending: let every connected linked peer's sender look."""
        for peer, session in self.sessions.items():
            if peer != except_peer and self.is_linked(peer):
                session.request_flush()

    # -- sessions ------------------------------------------------------------------------------
    def session_opened(self, session: PeerSession) -> bool:
        existing = self.sessions.get(session.peer)
        if existing is not None and not existing.closed.is_set():
            # Two connections opened together (both sides dialled): the lower id's dial wins on both sides.
            # Otherwise the newer one is the peer coming back, and the old one is dead or dying.
            keep_new = existing.stale() or session.dialed == (self.me < session.peer)
            if not keep_new:
                asyncio.ensure_future(session.close())
                return False
            asyncio.ensure_future(existing.close())
        self.sessions[session.peer] = session
        host = session.conn.address.rsplit(":", 1)[0]
        address = f"{host}:{session.peer_port}" if getattr(session, "peer_port", None) else None
        upsert_device(self.store, session.peer, name=session.peer_name or None, address=address, connected=True)
        log.info("connected to %s at %s", session.label, session.conn.address)
        if self.is_linked(session.peer):
            session.request_flush()
        return True

    def session_closed(self, session: PeerSession) -> None:
        if self.sessions.get(session.peer) is session:
            del self.sessions[session.peer]
            self.largage.peer_gone(session.peer)
            try:
                upsert_device(self.store, session.peer, connected=False)
            except Exception:  # the device may have been forgotten (unlink)
                pass

    async def _serve(self, incoming: Incoming) -> None:
        try:
            conn = await accept(incoming, self.identity)
        except Exception as exc:  # hostile or broken handshakes must not disturb the daemon
            log.info("refused a connection: %s", exc)
            incoming.abort()
            return
        if conn.peer_id == self.me:
            await conn.close()
            return
        await PeerSession(self, conn, dialed=False).run()

    async def dial(self, host: str, port: int, expected: str | None = None) -> PeerSession | None:
        """Connect to ``host:port`` (refusing any device but ``expected``) and start a session."""
        key = expected or f"{host}:{port}"
        if key in self._dialing or (expected and expected in self.sessions):
            return self.sessions.get(expected) if expected else None
        self._dialing.add(key)
        try:
            conn = await connect(host, port, self.identity, expected)
        except (OSError, asyncio.TimeoutError, Refused, Exception) as exc:
            log.debug("cannot reach %s:%s: %s", host, port, exc)
            return None
        finally:
            self._dialing.discard(key)
        if conn.peer_id == self.me:
            await conn.close()
            return None
        session = PeerSession(self, conn, dialed=True)
        asyncio.ensure_future(session.run())
        for _ in range(100):  # wait for HELLO (bounded)
            if self.sessions.get(conn.peer_id) is session or session.closed.is_set():
                break
            await asyncio.sleep(0.05)
        return self.sessions.get(conn.peer_id)

    async def session_for(self, device_id: str) -> PeerSession:
        """The live session with ``device_id``, dialling its last known address if needed."""
        if device_id in self.sessions:
            return self.sessions[device_id]
        device = get_device(self.store, device_id)
        if device.last_address:
            host, port = parse_peer(device.last_address)
            session = await self.dial(host, port, device_id)
            if session is not None:
                return session
        raise EcosysError(f"device {device.name or device_id[:12]} is not reachable now")

    async def _keep_dialing(self, stop: asyncio.Event) -> None:
        """Static peers and linked devices with a known address are dialled until connected."""
        while not stop.is_set():
            targets = [(h, p, None) for h, p in self.static_peers]
            for device in list_devices(self.store):
                if device.linked and device.device_id not in self.sessions and device.last_address:
                    try:
                        h, p = parse_peer(device.last_address)
                    except EcosysError:
                        continue
                    targets.append((h, p, device.device_id))
            connected_addresses = {s.conn.address for s in self.sessions.values()}
            for host, port, expected in targets:
                if expected is None and f"{host}:{port}" in connected_addresses:
                    continue
                if expected is None and any(getattr(s, "peer_port", None) == port and s.conn.address.startswith(host)
                                            for s in self.sessions.values()):
                    continue
                await self.dial(host, port, expected)
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except asyncio.TimeoutError:
                pass

    # -- discovery -----------------------------------------------------------------------------
    async def _found(self, device_id: str, host: str, port: int, name: str) -> None:
        upsert_device(self.store, device_id, name=name or None, address=f"{host}:{port}", connected=True)
        if self.is_linked(device_id) and device_id not in self.sessions:
            await self.dial(host, port, device_id)

    async def _lost(self, device_id: str) -> None:
        if device_id not in self.sessions:
            upsert_device(self.store, device_id, connected=False)

    # -- peer requests -------------------------------------------------------------------------
    async def on_control_frame(self, session: PeerSession, frame: Frame) -> None:
        """LINK, SHARE and friends from a peer (the reader never waits for a person: tasks do)."""
        flag, h = frame.flag, frame.header
        if flag in ("LINK_ACCEPTED", "LINK_REFUSED", "SHARE_ACCEPTED", "SHARE_REFUSED", "SHARE_REVERSE"):
            kind = "link" if flag.startswith("LINK") else "share"
            future = self._waiting.get((kind, session.peer))
            if future is not None and not future.done():
                future.set_result(frame)
            return
        if flag in ("OTDL", "MOTDL"):
            asyncio.ensure_future(self.largage.on_offer(session, frame))
            return
        if flag in ("OFFER_ACCEPTED", "OFFER_REFUSED", "OFFER_DONE", "CANCEL"):
            await self.largage.on_answer(session, frame)
            return
        handler = {"LINK": self._on_link, "UNLINK": self._on_unlink, "SHARE": self._on_share,
                   "SETUP_QUEUE": self._on_setup_queue}.get(flag)
        if handler is not None:
            asyncio.ensure_future(handler(session, h))

    async def _on_link(self, session: PeerSession, h: dict[str, Any]) -> None:
        if self.is_linked(session.peer):
            session.answer(("LINK", {"flag": "LINK_ACCEPTED", "device_id": self.me, "name": self.name}, b""))
            return
        question = (f"Device {session.peer_name or '?'} ({session.peer[:12]}…, at {session.conn.address}) asks to "
                    "link with this device. Answer yes or no.")
        try:
            answer = await self.run_engine(lambda: self.prompts.ask("LINK", question, timeout=PROMPT_TIMEOUT))
        except EcosysError:
            answer = ""
        if answer.strip().lower() in YES:
            link_device(self.store, self.plugins.hook, session.peer, session.peer_name)
            self._forget_cache(session.peer)
            session.answer(("LINK", {"flag": "LINK_ACCEPTED", "device_id": self.me, "name": self.name}, b""))
            log.info("linked with %s", session.label)
        else:
            session.answer(("LINK", {"flag": "LINK_REFUSED", "device_id": self.me}, b""))
            log.info("refused to link with %s", session.label)

    async def _on_unlink(self, session: PeerSession, h: dict[str, Any]) -> None:
        try:
            unlink_device(self.store, self.plugins.hook, session.peer)
        except NotFound:
            pass
        self._forget_cache(session.peer)
        log.info("%s unlinked this device", session.label)
        await session.close()

    async def _on_setup_queue(self, session: PeerSession, h: dict[str, Any]) -> None:
        secure_id = h.get("secure_id", "")
        if session.peer in task_device_ids(self.store, secure_id):
            await self.run_engine(self.engine.queue_all, secure_id, session.peer)
            session.request_flush()

    async def _on_share(self, session: PeerSession, h: dict[str, Any]) -> None:
        def reply(flag: str, **extra: Any) -> None:
            session.answer((flag, {"flag": flag, "device_id": self.me, **extra}, b""))

        try:
            offer = TaskOffer(h["name"], h["secure_id"], TaskKind(h["kind"]), h.get("source") or None,
                              datetime.fromisoformat(h["created_at"]), session.peer)
        except (KeyError, ValueError) as exc:
            reply("SHARE_REFUSED", error=f"bad share request: {exc}")
            return
        try:
            task = await self.run_engine(self._accept_share, offer)
        except EcosysError as exc:
            reply("SHARE_REFUSED", secure_id=offer.secure_id, error=str(exc))
            return
        if task.secure_id != offer.secure_id:  # ours is older: the other side adopts it
            reply("SHARE_REVERSE", secure_id=task.secure_id, created_at=task.created_at.isoformat())
        else:
            reply("SHARE_ACCEPTED", secure_id=task.secure_id)
        if self.watcher is not None:
            self.watcher.add(task)
        await self.run_engine(self.engine.queue_all, task.secure_id, session.peer)
        session.request_flush()

    def _accept_share(self, offer: TaskOffer):  # type: ignore[no-untyped-def]
        hook = self.plugins.hook
        for task in list_tasks(self.store):
            if task.secure_id == offer.secure_id:
                link_task_device(self.store, task.secure_id, offer.device_id)
                hook.task_linked(task=task, device_id=offer.device_id)
                return task
        if offer.kind in (TaskKind.APP, TaskKind.GRAPIN):
            for task in list_tasks(self.store):
                if task.kind is offer.kind and task.source == offer.source:
                    decision = decide_app_link(task.created_at, task.secure_id, offer.created_at, offer.secure_id)
                    if decision is AppLinkDecision.ADOPT_REMOTE:
                        task = adopt_secure_id(self.store, task.name, offer.secure_id)
                    link_task_device(self.store, task.secure_id, offer.device_id)
                    hook.task_linked(task=task, device_id=offer.device_id)
                    return task
        root = choose_task_root(hook, self.prompts, offer, timeout=PROMPT_TIMEOUT)
        task = accept_task_offer(self.store, hook, offer, root)
        self.engine.scan(task.secure_id)
        return task

    # -- control requests ----------------------------------------------------------------------
    async def _await_answer(self, kind: str, peer: str, timeout: float) -> Frame:
        future = self.loop.create_future()
        self._waiting[(kind, peer)] = future
        try:
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise EcosysError("no answer from the other device in time") from None
        finally:
            self._waiting.pop((kind, peer), None)

    def resolve_device(self, text: str) -> str:
        """A device id from a readable id, hex, or a known device's name."""
        try:
            return parse_device_id(text)
        except EcosysError:
            matches = [d.device_id for d in list_devices(self.store) if d.name and d.name.casefold() == text.casefold()]
            if len(matches) == 1:
                return matches[0]
            raise

    async def handle(self, cmd: str, args: dict[str, Any]) -> Any:
        """The control channel's commands."""
        if cmd == "status":
            return self.status()
        if cmd == "connect":
            host, port = parse_peer(args["address"])
            session = await self.dial(host, port)
            if session is None:
                raise EcosysError(f"cannot connect to {args['address']}")
            return {"device_id": session.peer, "name": session.peer_name}
        if cmd == "link":
            peer = self.resolve_device(args["device"])
            session = await self.session_for(peer)
            await session.send({"flag": "LINK", "device_id": self.me, "name": self.name})
            answer = await self._await_answer("link", peer, float(args.get("timeout_s", PROMPT_TIMEOUT + 10)))
            if answer.flag != "LINK_ACCEPTED":
                raise EcosysError(f"{session.peer_name or peer[:12]} refused the link")
            link_device(self.store, self.plugins.hook, peer, str(answer.header.get("name", session.peer_name)))
            self._forget_cache(peer)
            session.request_flush()
            return {"device_id": peer, "name": session.peer_name}
        if cmd == "unlink":
            peer = self.resolve_device(args["device"])
            session = self.sessions.get(peer)
            if session is not None:
                await session.send({"flag": "UNLINK", "device_id": self.me})
            unlink_device(self.store, self.plugins.hook, peer)
            self._forget_cache(peer)
            if session is not None:
                await session.close()
            return {"device_id": peer}
        if cmd == "share":
            return await self._share(args["task"], self.resolve_device(args["device"]),
                                     float(args.get("timeout_s", PROMPT_TIMEOUT + 10)))
        if cmd == "reload":  # tasks were added or removed from the command line while we run
            self.store.touch()
            tasks = {t.secure_id: t for t in list_tasks(self.store)}
            if self.watcher is not None:
                for secure_id in set(self.watcher.tasks) - set(tasks):
                    self.watcher.remove(secure_id)
                for secure_id, task in tasks.items():
                    if secure_id not in self.watcher.tasks:
                        self.watcher.add(task)
                        await self.run_engine(self.engine.scan, secure_id)
            self.changed()
            return {}
        if cmd == "rescan":
            for task in list_tasks(self.store):
                await self.run_engine(self.engine.scan, task.secure_id)
            self.changed()
            return {}
        if cmd == "stop":
            self.loop.call_soon(self._stop.set)
            return {}
        if cmd == "send":
            return await self.largage.send(args["device"], list(args["paths"]))
        if cmd == "offers":
            return [o.public() for o in self.largage.offers.values()]
        if cmd == "cancel":
            return await self.largage.cancel(args.get("offer_id"))
        raise EcosysError(f"unknown daemon command {cmd!r}")

    async def _share(self, task_name: str, peer: str, timeout: float) -> dict[str, Any]:
        task = get_task(self.store, task_name)
        if not self.is_linked(peer):
            raise EcosysError("link the device first ('ecosys link DEVICE')")
        session = await self.session_for(peer)
        await session.send({"flag": "SHARE", "device_id": self.me, "secure_id": task.secure_id, "name": task.name,
                            "kind": task.kind.value, "source": task.source or "",
                            "created_at": task.created_at.isoformat()})
        answer = await self._await_answer("share", peer, timeout)
        if answer.flag == "SHARE_REFUSED":
            raise EcosysError(f"refused: {answer.header.get('error', 'no reason given')}")
        if answer.flag == "SHARE_REVERSE":
            task = adopt_secure_id(self.store, task.name, answer.header["secure_id"])
            note = "the other device's task is older: this one now follows it"
        else:
            note = "shared"
        link_task_device(self.store, task.secure_id, peer)
        self.plugins.hook.task_linked(task=task, device_id=peer)
        await self.run_engine(self.engine.queue_all, task.secure_id, peer)
        if answer.flag == "SHARE_REVERSE":
            await session.send({"flag": "SETUP_QUEUE", "device_id": self.me, "secure_id": task.secure_id})
        session.request_flush()
        return {"task": task.name, "secure_id": task.secure_id, "note": note}

    def status(self) -> dict[str, Any]:
        devices = []
        for d in list_devices(self.store):
            s = self.sessions.get(d.device_id)
            devices.append({"name": d.name, "device_id": d.device_id, "linked": d.linked,
                            "connected": s is not None, "address": d.last_address,
                            "transfers": list(s.transfers.values()) if s else []})
        names = {d["device_id"]: d["name"] or d["device_id"][:12] for d in devices}
        tasks = []
        for t in list_tasks(self.store):
            pending = self.engine.pending_counts(t.secure_id)
            tasks.append({"name": t.name, "root": str(t.root), "kind": t.kind.value, "secure_id": t.secure_id,
                          "backup_mode": t.backup_mode,
                          "pending": {names.get(k, k[:12]): v for k, v in pending.items()}})
        return {"device": {"name": self.name, "id": self.identity.readable, "port": self.port},
                "devices": devices, "tasks": tasks}

    # -- run -----------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` is set (or SIGINT/SIGTERM when run by ``ecosys up``)."""
        self.loop = asyncio.get_running_loop()
        self._stop = stop or asyncio.Event()
        server = await listen(self.host, self.port, self._serve)
        self.port = server.sockets[0].getsockname()[1]
        control = ControlServer(self.home.root / "daemon.json", self.handle)
        await control.start()
        for task in list_tasks(self.store):
            await self.run_engine(self.engine.scan, task.secure_id)
        self.watcher = TaskWatcher(self.engine, list_tasks(self.store), on_scan=self._scanned)
        self.watcher.start()
        if self.mdns:
            self.discovery = Discovery(self.me, self.name, self.port, self._found, self._lost, self.interfaces)
            try:
                await self.discovery.start()
            except OSError as exc:
                log.warning("zeroconf discovery unavailable: %s", exc)
                self.discovery = None
        dialer = asyncio.ensure_future(self._keep_dialing(self._stop))
        log.info("Ecosys %s (%s) listening on %s:%s", self.name, self.identity.readable, self.host, self.port)
        print(f"ecosys up: {self.name} {self.identity.readable} port {self.port}", flush=True)
        try:
            await self._stop.wait()
        finally:
            log.info("shutting down")
            dialer.cancel()
            server.close()
            for session in list(self.sessions.values()):
                await session.close()
            if self.discovery is not None:
                await self.discovery.stop()
            await control.stop()
            await self.loop.run_in_executor(None, self.watcher.stop)
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.store.close()

    def _scanned(self, secure_id: str, report: Any) -> None:
        if report.changed or report.deleted:
            self.loop.call_soon_threadsafe(self.changed)


def run_daemon(node: Node) -> None:
    """Run ``node`` in the foreground; Ctrl-C or SIGTERM stop it cleanly."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, stop.set)
            except (NotImplementedError, RuntimeError):  # Windows: Ctrl-C raises KeyboardInterrupt instead
                pass
        await node.run(stop)

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


__all__ = ["Node", "run_daemon", "read_config", "parse_peer"]
