"""Install, update and uninstall tout-en-un apps and grapins from a Magasin (the seed's flow):

download → verify sha256 → unpack through the ``install_artifact`` hook into a staging folder → (only with
consent) run the installer → move into ``ECOSYS_HOME/apps/<AppName>`` → create the sync data folder →
register the "<AppName> (application)" sync task → record exactly what was installed.

Files the artifact ships inside the sync data folder are seed data: copied only when absent and never
recorded, so neither an update nor an uninstall touches what the user's devices synced there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from ecosys_core.defaults.installed_apps import APP_MANIFEST
from ecosys_core.errors import AlreadyExists, EcosysError, NotFound
from ecosys_core.models import ToutEnUnConfig
from ecosys_core.plugins import EcosysPlugins
from ecosys_core.resolve import current_platform, natural_version_key
from ecosys_core.safe_paths import check_relative_path, join_inside
from ecosys_core.settings import HomeLayout
from ecosys_core.store import Store
from ecosys_core.store.tasks import add_task, get_task, remove_task
from ecosys_core.sync.fsio import remove_empty_parents
from ecosys_core.types import TaskKind

from .client import MagasinClient, Progress
from .index import AppVersion, MagasinIndex
from .publish import slug

RECORD = ".ecosys-install.json"
GRAPIN_RECORD = "magasin-grapins.json"
Consent = Callable[[str], bool]


def task_name(app_name: str) -> str:
    """The seed's name of an app's sync task."""
    return f"{app_name} (application)"


@dataclass
class InstallRecord:
    """What one installation put on disk (``apps/<name>/.ecosys-install.json``)."""

    app_name: str
    version: str
    files: list[str]
    artifact_sha256: str
    installed_at: str
    source: str
    extra: dict = field(default_factory=dict)


class Installer:
    """Apps and grapins of one ECOSYS_HOME, installed from ``client``'s Magasin."""

    def __init__(self, home: HomeLayout, plugins: EcosysPlugins, store: Store, client: MagasinClient | None) -> None:
        self.home, self.plugins, self.store, self.client = home, plugins, store, client

    # -- queries ---------------------------------------------------------------------------------
    def index(self) -> MagasinIndex:
        if self.client is None:
            raise EcosysError("no Magasin configured")
        return self.client.index()

    def records(self) -> list[InstallRecord]:
        """Every app installed from a Magasin."""
        out = []
        for path in sorted(self.home.apps.glob(f"*/{RECORD}")):
            try:
                out.append(InstallRecord(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError):
                continue
        return out

    def record(self, name: str) -> InstallRecord | None:
        folded = name.casefold()
        return next((r for r in self.records() if r.app_name.casefold() == folded), None)

    def installed_grapins(self) -> dict[str, str]:
        """Grapin name → file in ECOSYS_HOME/plugins, for grapins installed from a Magasin."""
        try:
            return json.loads((self.home.root / GRAPIN_RECORD).read_text())
        except (OSError, ValueError):
            return {}

    # -- install ---------------------------------------------------------------------------------
    def install(self, name: str, version: str | None = None, *, consent: Consent, progress: Progress | None = None,
                report: Callable[[str], None] = lambda _: None) -> str:
        """Install app or grapin ``name``; return a one-line summary."""
        index = self.index()
        entry = index.find_app(name)
        if entry is None:
            grapin = index.find_grapin(name)
            if grapin is None:
                raise NotFound(f"the Magasin has no app or grapin called {name!r} (try 'ecosys magasin search')")
            return self._install_grapin(grapin)
        chosen = entry.version(version) if version else entry.latest()
        if chosen is None:
            raise NotFound(f"{entry.app_name} has no version {version!r} "
                           f"(available: {', '.join(v.version for v in entry.versions)})")
        existing = self.record(entry.app_name)
        if existing is not None:
            raise AlreadyExists(f"{entry.app_name} {existing.version} is already installed "
                                f"(use 'ecosys magasin update' or uninstall it first)")
        self._install_version(chosen, consent=consent, progress=progress, report=report, previous=None)
        return f"Installed {entry.app_name} {chosen.version} into {self.home.apps / entry.app_name}"

    def _install_grapin(self, grapin) -> str:  # type: ignore[no-untyped-def]
        records = self.installed_grapins()
        filename = f"{slug(grapin.app_name)}.json"
        target = self.home.plugins / filename
        self.home.plugins.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.home.plugins, prefix=".grapin-", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(grapin.to_json_dict(), fh, indent=2, ensure_ascii=False)
        os.replace(tmp, target)
        records[grapin.app_name] = filename
        (self.home.root / GRAPIN_RECORD).write_text(json.dumps(records, indent=2, sort_keys=True))
        return f"Installed grapin {grapin.app_name} into {target}"

    def _install_version(self, chosen: AppVersion, *, consent: Consent, progress: Progress | None,
                         report: Callable[[str], None], previous: InstallRecord | None) -> InstallRecord:
        config = chosen.config.model_copy(update={"app_version": chosen.version})
        platform = current_platform()
        artifact = chosen.artifact_for(platform)
        if artifact is None:
            raise EcosysError(f"{config.app_name} {chosen.version} has nothing to install on {platform}")
        assert self.client is not None
        root = self.home.apps / config.app_name
        downloads = self.home.root / "cache" / "downloads"
        report(f"Downloading {config.app_name} {chosen.version} ({artifact.size} bytes, {artifact.type})")
        artifact_path = self.client.download(artifact, downloads, progress)
        staging = Path(tempfile.mkdtemp(prefix=f".{slug(config.app_name)}-staging-", dir=self.home.apps))
        moved: list[str] = []
        root_existed = root.exists()
        try:
            created = self.plugins.hook.install_artifact(artifact=artifact_path, artifact_type=artifact.type,
                                                         destination=staging / "files")
            if created is None:
                raise EcosysError(f"no plugin installs artifacts of type {artifact.type!r}")
            installer = self._installer_command(config, created, root)
            if installer is not None:
                message = f"{config.app_name} needs its installer: it will run {installer} in {root}"
                report(message)
                if not consent(message):
                    raise EcosysError(f"the installer of {config.app_name} was refused; nothing was installed")
            if previous is not None:
                self._remove_files(root, previous.files)
            moved = self._move_in(staging / "files", created, root, config)
            if installer is not None:
                self._run(installer, root, what="installer")
            data = root.joinpath(*config.app_sync_data_folder_path.split("/"))
            data.mkdir(parents=True, exist_ok=True)
            (root / APP_MANIFEST).write_text(json.dumps(config.to_json_dict(), indent=2, ensure_ascii=False))
            record = InstallRecord(config.app_name, chosen.version, moved, artifact.sha256,
                                   datetime.now(timezone.utc).isoformat(), self.client.url)
            (root / RECORD).write_text(json.dumps(asdict(record), indent=2))
            try:
                get_task(self.store, task_name(config.app_name))
            except NotFound:
                add_task(self.store, name=task_name(config.app_name), root=data, kind=TaskKind.APP,
                         source=config.app_name)
            return record
        except BaseException:
            self._remove_files(root, moved)
            if not root_existed and root.exists() and not any(root.iterdir()):
                root.rmdir()
            raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(artifact_path.parent, ignore_errors=True)

    def _installer_command(self, config: ToutEnUnConfig, created: list[str], root: Path) -> Path | None:
        if not config.needs_installer:
            return None
        rel = config.app_installer_path
        if rel.startswith("/"):
            return Path(rel)
        check_relative_path(rel)
        if rel not in created:
            raise EcosysError(f"{config.app_name}: the installer {rel} is not in the artifact")
        return root.joinpath(*rel.split("/"))

    def _move_in(self, staging: Path, created: list[str], root: Path, config: ToutEnUnConfig) -> list[str]:
        data_prefix = config.app_sync_data_folder_path.rstrip("/") + "/"
        moved = []
        for rel in created:
            check_relative_path(rel)
            src = staging.joinpath(*rel.split("/"))
            dst = join_inside(root, rel) if root.exists() else root.joinpath(*rel.split("/"))
            dst.parent.mkdir(parents=True, exist_ok=True)
            if rel.startswith(data_prefix):
                if not dst.exists():  # seed data: never overwrite what the user synced
                    os.replace(src, dst)
                continue
            os.replace(src, dst)
            moved.append(rel)
        return moved

    def _remove_files(self, root: Path, files: list[str]) -> None:
        for rel in files:
            try:
                path = join_inside(root, rel)
            except EcosysError:
                continue
            if path.is_file() or path.is_symlink():
                path.unlink()
                remove_empty_parents(path, root)

    def _run(self, command: Path, cwd: Path, *, what: str) -> None:
        try:
            os.chmod(command, os.stat(command).st_mode | 0o100)
            done = subprocess.run([str(command)], cwd=cwd, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EcosysError(f"the {what} {command} could not run: {exc}") from None
        if done.returncode != 0:
            raise EcosysError(f"the {what} {command} failed with exit code {done.returncode}")

    # -- uninstall / update ----------------------------------------------------------------------
    def uninstall(self, name: str, *, delete_data: bool = False, report: Callable[[str], None] = lambda _: None) -> str:
        """Remove exactly what the install created (running the uninstaller first); the synced data
        stays unless ``delete_data``. Grapins installed from the Magasin are removed from plugins/."""
        record = self.record(name)
        if record is None:
            grapins = self.installed_grapins()
            match = next((g for g in grapins if g.casefold() == name.casefold()), None)
            if match is None:
                raise NotFound(f"{name!r} is not installed from the Magasin (see 'ecosys magasin list --installed')")
            (self.home.plugins / grapins.pop(match)).unlink(missing_ok=True)
            (self.home.root / GRAPIN_RECORD).write_text(json.dumps(grapins, indent=2, sort_keys=True))
            return f"Removed grapin {match}"
        root = self.home.apps / record.app_name
        config = ToutEnUnConfig.model_validate_json((root / APP_MANIFEST).read_text())
        if config.app_uninstaller_path:
            uninstaller = join_inside(root, config.app_uninstaller_path)
            report(f"Running the uninstaller {uninstaller}")
            self._run(uninstaller, root, what="uninstaller")
        self._remove_files(root, record.files)
        (root / RECORD).unlink(missing_ok=True)
        (root / APP_MANIFEST).unlink(missing_ok=True)
        data = root.joinpath(*config.app_sync_data_folder_path.split("/"))
        try:
            remove_task(self.store, task_name(record.app_name))
        except NotFound:
            pass
        if delete_data:
            shutil.rmtree(data, ignore_errors=True)
        if root.exists() and not any(root.rglob("*")):
            shutil.rmtree(root)
        kept = "" if delete_data or not data.exists() else f"; its data stays in {data}"
        return f"Uninstalled {record.app_name} {record.version}{kept}"

    def update(self, name: str | None = None, *, consent: Consent, progress: Progress | None = None,
               report: Callable[[str], None] = lambda _: None) -> list[str]:
        """Update ``name`` (or every installed app) to the newest version; the synced data and the
        sync task (and its secure_id) are kept."""
        index = self.index()
        records = [self.record(name)] if name else self.records()
        if name and records[0] is None:
            raise NotFound(f"{name!r} is not installed")
        done = []
        for record in records:
            assert record is not None
            entry = index.find_app(record.app_name)
            if entry is None:
                continue
            latest = entry.latest()
            if natural_version_key(latest.version) <= natural_version_key(record.version):
                continue
            self._install_version(latest, consent=consent, progress=progress, report=report, previous=record)
            done.append(f"Updated {record.app_name} {record.version} → {latest.version}")
        return done
