"""The Magasin in the running daemon (hook ``register_daemon_commands``): search, details, install,
update and uninstall, for the dashboard. Installs and updates run as jobs in the daemon's threads; an
installer's consent is asked as an ``INSTALLER`` prompt (answered on the dashboard or with ``ecosys
answer``); ``magasin.jobs`` lists the jobs with their progress and is pushed to the dashboard live."""

from __future__ import annotations

import asyncio
import secrets
import threading
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ecosys_core.daemon_services import DaemonCommand, DaemonServices
from ecosys_core.errors import EcosysError
from ecosys_core.prompts import is_yes

if TYPE_CHECKING:  # the client and the installer load the index and app models (pydantic): at first use
    from .install import Installer

CONSENT_TIMEOUT_S = 300.0
MAX_JOBS = 50


@dataclass
class Job:
    """One install, update or uninstall: its progress and its outcome."""

    job_id: str
    action: str
    app: str
    state: str = "running"  # running, done, failed
    done: int = 0
    total: int = 0
    message: str = ""
    lines: list[str] = field(default_factory=list)


class MagasinJobs:
    """The Magasin's jobs in one daemon (thread-safe: jobs run in the daemon's worker threads)."""

    def __init__(self, daemon: DaemonServices) -> None:
        self.daemon = daemon
        self.jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def installer(self, *, online: bool = True) -> Installer:
        """An installer for this daemon, with a client of the configured Magasin when ``online``."""
        from .client import MagasinClient, configured_url
        from .install import Installer

        if not online:
            return Installer(self.daemon.home, self.daemon.plugins, self.daemon.store, None)
        client = MagasinClient(configured_url(self.daemon.store), self.daemon.home.root / "cache" / "magasin")
        return Installer(self.daemon.home, self.daemon.plugins, self.daemon.store, client)

    def consent(self, message: str) -> bool:
        """The person's yes to running an installer, asked as an INSTALLER prompt (no answer: no)."""
        try:
            answer = self.daemon.prompts.ask("INSTALLER", f"{message}. Run it? (yes/no)", timeout=CONSENT_TIMEOUT_S)
        except EcosysError:
            return False
        return is_yes(answer)

    def start(self, action: str, app: str, work: Callable[[Job], str]) -> dict[str, Any]:
        """Run ``work(job)`` in the daemon's threads; return the job at once."""
        job = Job(secrets.token_hex(6), action, app)
        with self._lock:
            if len(self.jobs) >= MAX_JOBS:  # keep the newest: finished ones go first
                for old in [j for j in self.jobs.values() if j.state != "running"][: len(self.jobs) - MAX_JOBS + 1]:
                    del self.jobs[old.job_id]
            self.jobs[job.job_id] = job

        def run() -> None:
            try:
                job.message = work(job)
                job.state = "done"
            except EcosysError as exc:
                job.message, job.state = str(exc), "failed"

        async def background() -> None:
            await self.daemon.run_blocking(run)
            if job.state == "done":
                await self.daemon.call("reload", {})  # a new app's data task is followed at once

        asyncio.get_running_loop().create_task(background())
        return asdict(job)

    def progress(self, job: Job) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            job.done, job.total = done, total
        return report

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(j) for j in self.jobs.values()]


def commands(daemon: DaemonServices) -> dict[str, DaemonCommand]:
    """The Magasin's daemon commands by name."""
    jobs = MagasinJobs(daemon)

    async def search(args: dict[str, Any]) -> Any:
        def run() -> list[dict[str, str]]:
            index = jobs.installer().index()
            return [{"kind": kind, "name": name, "description": text}
                    for kind, name, text in index.search(str(args.get("term", "")))]
        return await daemon.run_blocking(run)

    async def info(args: dict[str, Any]) -> Any:
        def run() -> dict[str, Any]:
            inst = jobs.installer()
            index = inst.index()
            name = str(args.get("app", ""))
            entry = index.find_app(name)
            if entry is None:
                grapin = index.find_grapin(name)
                if grapin is None:
                    raise EcosysError(f"the Magasin has no app or grapin called {name!r}")
                return {"kind": "grapin", "name": grapin.app_name, "installed": grapin.app_name in inst.installed_grapins()}
            record = inst.record(entry.app_name)
            latest = entry.latest()
            return {"kind": "app", "name": entry.app_name, "description": entry.app_description,
                    "versions": [v.version for v in entry.versions], "latest": latest.version,
                    "installed": record.version if record else None,
                    "update": bool(record and record.version != latest.version)}
        return await daemon.run_blocking(run)

    async def installed(args: dict[str, Any]) -> Any:
        def run() -> list[dict[str, str]]:
            inst = jobs.installer()
            rows = [{"kind": "app", "name": r.app_name, "version": r.version} for r in inst.records()]
            return rows + [{"kind": "grapin", "name": n, "version": ""} for n in sorted(inst.installed_grapins())]
        return await daemon.run_blocking(run)

    async def install(args: dict[str, Any]) -> Any:
        app, version = str(args.get("app", "")), args.get("version")

        def work(job: Job) -> str:
            return jobs.installer().install(app, str(version) if version else None, consent=jobs.consent,
                                            progress=jobs.progress(job), report=job.lines.append)
        return jobs.start("install", app, work)

    async def update(args: dict[str, Any]) -> Any:
        app = str(args.get("app") or "") or None

        def work(job: Job) -> str:
            done = jobs.installer().update(app, consent=jobs.consent, progress=jobs.progress(job),
                                           report=job.lines.append)
            return "\n".join(done) if done else "Everything is up to date."
        return jobs.start("update", app or "everything", work)

    async def uninstall(args: dict[str, Any]) -> Any:
        app = str(args.get("app", ""))

        def work(job: Job) -> str:
            inst = jobs.installer(online=False)
            return inst.uninstall(app, delete_data=bool(args.get("delete_data")), report=job.lines.append)
        return jobs.start("uninstall", app, work)

    async def listing(args: dict[str, Any]) -> Any:
        return jobs.listing()

    return {"magasin.search": search, "magasin.info": info, "magasin.installed": installed,
            "magasin.install": install, "magasin.update": update, "magasin.uninstall": uninstall,
            "magasin.jobs": listing}
