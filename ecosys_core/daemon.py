"""The daemon (``ecosys up``): the composition root. It builds the parts and wires them together:
store and engine (sync), peers and sessions (net), linking exchanges, largage, the watcher, discovery
and the control channel. Nothing here decides anything; each rule lives in the part that owns it."""

from __future__ import annotations

import asyncio
import errno
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Callable

from .background import spawn
from .control_commands import DaemonParts, command_table
from .daemon_services import DaemonServices
from .errors import EcosysError
from .gui.desktop import open_folder
from .gui.guard import Guard, load_or_create_secret
from .gui.server import DEFAULT_PORT, GuiServer
from .gui.uploads import Uploads
from .home_lock import HomeLock
from .malloc_arenas import share_one_arena
from .largage import LargageService
from .link_exchange import ANSWER_FLAGS, REQUEST_FLAGS, LinkExchange
from .net.control import ControlServer
from .net.identity import load_or_create_identity
from .net.peers import Peers, parse_peer
from .net.protocol import Frame
from .net.session import PeerSession
from .net.transport import listen
from .plugins import get_plugin_manager
from .prompts import Prompts
from .questions import PendingQuestions
from .settings import HomeLayout
from .status import collect_status
from .store import open_store
from .store.settings_kv import device_name, get_setting
from .store.tasks import list_tasks
from .sync.engine import SyncEngine
from .sync.fsio import clear_staging
from .sync.local import ScanReport
from .sync.objects import ObjectStore
from .sync.watcher import TaskWatcher
from .types import TaskInfo

if TYPE_CHECKING:
    from .net.discovery import Discovery

log = logging.getLogger("ecosys.daemon")
LARGAGE_FLAGS = frozenset({"OTDL", "MOTDL", "OFFER_ACCEPTED", "OFFER_REFUSED", "OFFER_DONE", "CANCEL", "DATA"})


SWITCH_INTERVAL = 0.0005  # seconds a thread may hold the GIL while another waits for it


class Node:
    """One running device, built from its home: the parts, and :meth:`run` to serve until stopped."""

    def __init__(self, home: HomeLayout, *, port: int = 0, host: str = "0.0.0.0", peers: list[str] = (),
                 mdns: bool = True, interfaces: list[str] | None = None,
                 gui_address: tuple[str, int] | None = ("127.0.0.1", DEFAULT_PORT)) -> None:
        share_one_arena()  # before any worker thread allocates
        # The event loop (frames, acknowledgements) waits for the GIL behind the engine's and the watcher's
        # threads: at 1 ms instead of 5, the bulk of the side-by-side bench took 0.03-0.2 s less in 7 of 8
        # alternated pairs (docs/decisions.md, "Stop 30"); at 0.5 ms instead of 1, 0.12 s less on average
        # over 7 pairs, faster in 5 ("Stop 31").
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.home = home.ensure()
        self.lock = HomeLock(home.root)
        self.lock.acquire()  # before anything is touched: a second daemon leaves the first one's state alone
        self.store = open_store(home.database)
        self.plugins = get_plugin_manager(home)
        self.identity = load_or_create_identity(home.identity)
        self.name = device_name(self.store)
        clear_staging(home.staging)  # one daemon per home: what is there was left by a crash
        self.engine = SyncEngine(self.store, ObjectStore(home.objects), self.identity.device_id, self.plugins.hook,
                                 home.staging)
        self.prompts = Prompts(home.prompts)
        self.host, self.port = host, port
        self.static_peers = [parse_peer(p) for p in peers]
        self.mdns, self.interfaces = mdns, interfaces
        self.gui_address = gui_address
        self.gui: GuiServer | None = None
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ecosys-engine")
        self.stop = asyncio.Event()
        self.watcher: TaskWatcher | None = None
        self.peers = Peers(self.identity, self.name, self.store, self.engine, self.run_blocking, self._route,
                           self._session_ended, lambda session: self.links.session_started(session))
        self.peers.idle_timeout = float(get_setting(self.store, "session_idle_timeout_s") or self.peers.idle_timeout)
        questions = PendingQuestions()  # what peers ask the person, bounded together
        self.largage = LargageService(self.identity.device_id, self.name, home.largage, self.peers, self.prompts,
                                      lambda key: get_setting(self.store, key), self.run_blocking, questions)
        self.links = LinkExchange(self.identity.device_id, self.name, self.store, self.plugins.hook, self.prompts,
                                  self.peers, self.engine, self.run_blocking, self._task_added, questions)
        self.commands = command_table(DaemonParts(self.store, self.engine, self.peers, self.links, self.largage,
                                                  self.status, lambda: self.stop.set(), lambda: self.watcher))
        services = DaemonServices(home, self.store, self.plugins, self.prompts, self.run_blocking, self.handle)
        self.plugins.hook.register_daemon_commands(register=self._register_command, daemon=services)

    async def run_blocking(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run a blocking call (engine, store, prompts) in the worker threads."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def _route(self, session: PeerSession, frame: Frame) -> None:
        """Frames that are not sync traffic go to the linking exchanges or to largage."""
        if frame.flag in ANSWER_FLAGS or frame.flag in REQUEST_FLAGS:
            await self.links.on_frame(session, frame)
        elif frame.flag in ("OTDL", "MOTDL"):
            spawn(self.largage.on_offer(session, frame), f"the {frame.flag} offer of {session.label}")  # waits for a person
        elif frame.flag == "DATA":
            await self.largage.on_data(session, frame)
        elif frame.flag in LARGAGE_FLAGS:
            await self.largage.on_answer(session, frame)

    def _session_ended(self, peer: str) -> None:
        self.largage.peer_gone(peer)

    def _task_added(self, task: TaskInfo) -> None:
        if self.watcher is not None:
            self.watcher.follow(list_tasks(self.store))

    def _register_command(self, name: str, command: Any) -> None:
        if "." not in name or name in self.commands:
            log.warning("a plugin's daemon command %r was not added: plugin commands are named 'plugin.verb', "
                        "once", name)
            return
        self.commands[name] = command

    async def handle(self, cmd: str, args: dict[str, Any]) -> Any:
        """The control channel's commands (see ``control_commands``)."""
        handler = self.commands.get(cmd)
        if handler is None:
            raise EcosysError(f"unknown daemon command {cmd!r}")
        return await handler(args)

    def status(self) -> dict[str, Any]:
        """This device's status with live connections and transfers."""
        def live(device_id: str) -> list[dict[str, Any]] | None:
            session = self.peers.live(device_id)
            return None if session is None else list(session.transfers.values())

        return collect_status(self.store, name=self.name, readable_id=self.identity.readable,
                              me=self.identity.device_id, port=self.port, live=live)

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Serve until ``stop`` (or the ``stop`` command) is set."""
        loop = asyncio.get_running_loop()
        if stop is not None:
            self.stop = stop
        try:
            server = await listen(self.host, self.port, self.peers.serve)
        except OSError as exc:
            self.lock.release()
            raise EcosysError(f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
                              + (" (another program uses that port; choose one with --port)"
                                 if exc.errno == errno.EADDRINUSE else "")) from None
        self.port = self.peers.port = server.sockets[0].getsockname()[1]
        self.lock.record(self.port)
        gui_url = await self._start_gui()
        control = ControlServer(self.home.root / "daemon.json", self.handle, {"gui": gui_url} if gui_url else None)
        await control.start()
        # Watching starts before the first scan: a file made while that scan walks past its folder is
        # then an event, not a change left unseen until the periodic rescan minutes later.
        self.watcher = TaskWatcher(self.engine, list_tasks(self.store), on_scan=self._scanned(loop),
                                   on_resumed=self._resumed(loop))
        self.watcher.start()
        # a scan still reading large files lets the small ones it indexed go out meanwhile
        self.engine.when_queued(self._queued(loop))
        for task in list_tasks(self.store):
            await self.run_blocking(self.engine.scan, task.secure_id)
        discovery = await self._start_discovery()
        dialer = asyncio.ensure_future(self.peers.keep_dialing(self.static_peers, self.stop))
        log.info("Ecosys %s (%s) listening on %s:%s", self.name, self.identity.readable, self.host, self.port)
        print(f"ecosys up: {self.name} {self.identity.readable} port {self.port}", flush=True)
        try:
            await self.stop.wait()
        finally:
            log.info("shutting down")
            dialer.cancel()
            server.close()
            await self.peers.close_all()
            if discovery is not None:
                await discovery.stop()
            await control.stop()
            if self.gui is not None:
                await self.gui.stop()
            await loop.run_in_executor(None, self.watcher.stop)
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.store.close()
            self.lock.release()

    async def _start_gui(self) -> str | None:
        """Serve the dashboard (its URL), unless asked not to or its port is taken: syncing goes on
        without it, with a warning."""
        if self.gui_address is None:
            return None
        host, port = self.gui_address
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("the dashboard listens on %s, beyond this device: anyone who can reach it and has "
                        "this home's secret or a login link can act as you", host)
        guard = Guard(load_or_create_secret(self.home.root / "gui-secret"), host, port)
        uploads = Uploads(self.home.root / "largage-uploads")
        await self.run_blocking(uploads.sweep)
        gui = GuiServer(guard, self.handle, self.prompts, self.run_blocking, self.identity.readable, uploads,
                        lambda: open_folder(self.largage.folder), plugin_commands=[c for c in self.commands if "." in c])
        try:
            port = await gui.start(host, port)
        except OSError as exc:
            log.warning("the dashboard cannot listen on %s:%s (%s); choose another address with "
                        "--gui-address HOST:PORT", host, port, exc.strerror or exc)
            return None
        self.gui = gui
        self.commands["gui_login"] = self._gui_login
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}"

    async def _gui_login(self, args: dict[str, Any]) -> Any:
        """A one-time login link to the dashboard (``ecosys gui`` opens it)."""
        assert self.gui is not None
        host = self.gui.guard.host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
        return {"url": f"http://{shown}:{self.gui.guard.port}/login?token={self.gui.guard.login_token()}"}

    async def _start_discovery(self) -> Discovery | None:
        if not self.mdns:
            return None
        from .net.discovery import Discovery  # zeroconf (3.7 MiB resident) only where mDNS is on
        discovery = Discovery(self.identity.device_id, self.name, self.port, self.peers.found, self.peers.lost,
                              self.interfaces)
        try:
            await discovery.start()
        except OSError as exc:
            log.warning("zeroconf discovery unavailable: %s", exc)
            return None
        return discovery

    def _scanned(self, loop: asyncio.AbstractEventLoop) -> Callable[[str, ScanReport], None]:
        def scanned(secure_id: str, report: ScanReport) -> None:  # in the watcher's thread
            if report.changed or report.deleted:
                loop.call_soon_threadsafe(self.peers.changed)
        return scanned


    def _queued(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        def queued() -> None:  # in a scanning thread
            try:
                loop.call_soon_threadsafe(self.peers.changed)
            except RuntimeError:  # the loop is closed: the daemon is stopping, nothing goes out anyway
                pass
        return queued

    def _resumed(self, loop: asyncio.AbstractEventLoop) -> Callable[[str, set[str]], None]:
        def resume(secure_id: str, peers: set[str]) -> None:
            self.peers.changed()  # what waited here goes out
            for peer in peers:
                session = self.peers.live(peer)
                if session is not None:
                    session.ask_resend(secure_id)

        def resumed(secure_id: str, peers: set[str]) -> None:  # in the watcher's thread
            loop.call_soon_threadsafe(resume, secure_id, peers)
        return resumed


__all__ = ["Node", "parse_peer"]
