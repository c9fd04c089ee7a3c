"""``ecosys magasin …`` and ``ecosys app run``: the command line of the store, on top of the library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click

from ecosys_core.cli.env import (
    cli_env,
    echo_json,
    echo_table,
    json_option,
    notify_daemon,
)
from ecosys_core.cli.progress import transfer_progress
from ecosys_core.errors import EcosysError, NotFound
from ecosys_core.store.settings_kv import set_setting

from .client import MAGASIN_ENV, SAMPLE_STORE, MagasinClient, configured_url
from .install import Installer
from .publish import publish
from .serve import make_server

def magasin_url() -> str:
    """``--magasin``, else :func:`configured_url`."""
    ctx = click.get_current_context()
    explicit = ctx.find_root().meta.get("ecosys.magasin")
    if explicit:
        return explicit
    return configured_url(cli_env().store)


def _installer() -> Installer:
    env = cli_env()
    client = MagasinClient(magasin_url(), env.layout.root / "cache" / "magasin")
    return Installer(env.layout, env.plugins, env.store, client)


def _remember(ctx: click.Context, _p: click.Parameter, value: str | None) -> str | None:
    if value:
        ctx.find_root().meta["ecosys.magasin"] = value
    return value


magasin_option = click.option("--magasin", "magasin", metavar="URL", expose_value=False, callback=_remember,
                              help=f"Magasin to use (default: ${MAGASIN_ENV}, 'ecosys magasin use', or the sample).")


def _consent(yes: bool):  # type: ignore[no-untyped-def]
    def ask(message: str) -> bool:
        if yes:
            return True
        if not sys.stdin.isatty():
            click.echo("Not run without consent: add --yes to allow it.", err=True)
            return False
        return click.confirm(f"{message}. Run it?", default=False, err=True)
    return ask


class _Bar:
    """A rich progress bar for downloads (bytes, rate, ETA), quiet when stderr is not a terminal."""

    def __init__(self) -> None:
        self.progress = transfer_progress(transient=True)
        self.task = None

    def __enter__(self) -> "_Bar":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, done: int, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("download", total=total)
        self.progress.update(self.task, completed=done)


@click.group("magasin")
@magasin_option
def magasin_group() -> None:
    """The Magasin: apps (tout en un) and grapins to install."""


@magasin_group.command("use")
@click.argument("url", required=False)
@click.option("--default", "use_default", is_flag=True, help="Go back to the sample Magasin shipped with Ecosys.")
def use_command(url: str | None, use_default: bool) -> None:
    """Remember URL as the Magasin to use from now on, once it answers with a Magasin index.
    'ecosys magasin use --default' returns to the sample Magasin shipped with Ecosys."""
    env = cli_env()
    if use_default == bool(url):
        raise EcosysError("give a Magasin URL, or --default for the sample Magasin shipped with Ecosys")
    if use_default:
        set_setting(env.store, "magasin_url", "")
        click.echo(f"Magasin: the sample shipped with Ecosys ({SAMPLE_STORE.as_uri()}/)")
        return
    assert url is not None
    client = MagasinClient(url, env.layout.root / "cache" / "magasin")
    try:
        apps = len(client.index().apps)  # a URL that does not answer with an index is not saved
    finally:
        client.close()
    set_setting(env.store, "magasin_url", url)
    click.echo(f"Magasin: {url} ({apps} apps); 'ecosys magasin use --default' returns to the sample Magasin")


@magasin_group.command("search")
@click.argument("term")
@magasin_option
@json_option
def search_command(term: str, as_json: bool) -> None:
    """Find apps and grapins whose name or description holds TERM."""
    hits = _installer().index().search(term)
    if as_json:
        echo_json([{"kind": k, "name": n, "description": d} for k, n, d in hits])
        return
    echo_table(["kind", "name", "description"], hits, f"nothing matches {term!r}")


@magasin_group.command("info")
@click.argument("app")
@magasin_option
@json_option
def info_command(app: str, as_json: bool) -> None:
    """Show an app's or grapin's details and versions."""
    index = _installer().index()
    entry = index.find_app(app)
    if entry is None:
        grapin = index.find_grapin(app)
        if grapin is None:
            raise NotFound(f"the Magasin has no app or grapin called {app!r}")
        if as_json:
            echo_json({"kind": "grapin", **grapin.to_json_dict()})
        else:
            click.echo(f"{grapin.app_name} (grapin): {grapin.app_description}\n  path: {grapin.app_sync_data_folder_path}")
        return
    if as_json:
        echo_json({"kind": "app", **entry.model_dump(by_alias=True, mode="json")})
        return
    latest = entry.latest()
    click.echo(f"{entry.app_name} (app) {latest.version}: {entry.app_description}")
    click.echo(f"  versions:  {', '.join(v.version for v in entry.versions)}")
    click.echo(f"  platforms: {', '.join(latest.config.supported_platforms)}")
    click.echo(f"  data:      {latest.config.app_sync_data_folder_path} (synced as '{entry.app_name} (application)')")
    if latest.config.needs_installer:
        click.echo(f"  installer: {latest.config.app_installer_path} (runs only with your consent)")


@magasin_group.command("list")
@click.option("--installed", is_flag=True, help="Only what is installed here.")
@magasin_option
@json_option
def list_command(installed: bool, as_json: bool) -> None:
    """List the Magasin's apps and grapins (or what is installed)."""
    inst = _installer()
    if installed:
        rows = [{"kind": "app", "name": r.app_name, "version": r.version} for r in inst.records()]
        rows += [{"kind": "grapin", "name": n, "version": ""} for n in sorted(inst.installed_grapins())]
    else:
        index = inst.index()
        rows = [{"kind": "app", "name": a.app_name, "version": a.latest().version} for a in index.apps]
        rows += [{"kind": "grapin", "name": g.app_name, "version": ""} for g in index.grapins]
    if as_json:
        echo_json(rows)
        return
    echo_table(["kind", "name", "version"], [[r["kind"], r["name"], r["version"]] for r in rows],
               "nothing installed" if installed else "the Magasin is empty")


@magasin_group.command("install")
@click.argument("app")
@click.option("--version", "version", help="Install this version rather than the newest.")
@click.option("--yes", is_flag=True, help="Consent to running the app's installer, if it has one.")
@magasin_option
def install_command(app: str, version: str | None, yes: bool) -> None:
    """Install APP (a tout-en-un app or a grapin) from the Magasin."""
    with _Bar() as bar:
        message = _installer().install(app, version, consent=_consent(yes), progress=bar,
                                       report=lambda m: click.echo(m, err=True))
    notify_daemon()
    click.echo(message)


@magasin_group.command("uninstall")
@click.argument("app")
@click.option("--delete-data", is_flag=True, help="Also delete the app's synced data on this device.")
def uninstall_command(app: str, delete_data: bool) -> None:
    """Remove what installing APP created (its synced data stays unless --delete-data)."""
    inst = Installer(cli_env().layout, cli_env().plugins, cli_env().store, None)
    click.echo(inst.uninstall(app, delete_data=delete_data, report=lambda m: click.echo(m, err=True)))


@magasin_group.command("update")
@click.argument("app", required=False)
@click.option("--yes", is_flag=True, help="Consent to running installers.")
@magasin_option
def update_command(app: str | None, yes: bool) -> None:
    """Update APP (or every installed app) to its newest version, keeping its synced data."""
    with _Bar() as bar:
        done = _installer().update(app, consent=_consent(yes), progress=bar, report=lambda m: click.echo(m, err=True))
    click.echo("\n".join(done) if done else "Everything is up to date.")


@magasin_group.command("publish")
@click.argument("src_dir", type=click.Path(path_type=Path, file_okay=False))
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--name", help="The Magasin's name, shown to users.")
def publish_command(src_dir: Path, out_dir: Path, name: str | None) -> None:
    """Build (or update) a Magasin folder in OUT_DIR from the apps and grapins in SRC_DIR."""
    index = publish(src_dir, out_dir, name=name)
    click.echo(f"{out_dir}: {len(index.apps)} app(s), {len(index.grapins)} grapin(s)")


@magasin_group.command("serve")
@click.argument("out_dir", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def serve_command(out_dir: Path, port: int, host: str) -> None:
    """Serve the Magasin folder OUT_DIR over HTTP until Ctrl-C."""
    try:
        server = make_server(out_dir, host, port)
    except OSError as exc:
        raise EcosysError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    click.echo(f"Serving {out_dir} at http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@click.group("app")
def app_group() -> None:
    """Installed tout-en-un apps."""


@app_group.command("run", context_settings={"ignore_unknown_options": True})
@click.argument("app")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def run_command(app: str, args: tuple[str, ...]) -> None:
    """Start APP with its app root as current folder (where its sync data folder lives)."""
    installed = cli_env().plugins.apps().get(app).item
    exe = installed.config.executable
    command = Path(exe) if exe.startswith("/") else installed.root.joinpath(*exe.split("/"))
    if not command.is_file():
        raise NotFound(f"{installed.app_name}: executable {command} is missing")
    try:
        done = subprocess.run([str(command), *args], cwd=installed.root)
    except OSError as exc:
        raise EcosysError(f"cannot start {command}: {exc.strerror}") from None
    sys.exit(done.returncode)


@app_group.command("list")
@json_option
def app_list_command(as_json: bool) -> None:
    """List installed tout-en-un apps."""
    apps = list(cli_env().plugins.apps())
    rows = [{"name": a.item.app_name, "version": a.item.config.app_version, "root": str(a.item.root),
             "data": str(a.item.data_folder)} for a in apps]
    if as_json:
        echo_json(rows)
        return
    echo_table(["app", "version", "data folder"], [[r["name"], r["version"], r["data"]] for r in rows], "no apps installed")
