"""``ecosys up``, ``devices``, ``link``, ``unlink``, ``connect``, ``task share``: the network, through the daemon."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import click

from ..daemon import Node
from ..gui.server import DEFAULT_PORT as GUI_PORT
from ..gui.server import parse_gui_address
from ..logs import setup_daemon_logging
from ..net.control import DaemonNotRunning, call
from ..net.identity import readable_id
from ..settings import read_config
from ..status import device_row
from ..store.devices import list_devices
from .env import cli_env, echo_json, echo_table, json_option


def daemon_call(cmd: str, timeout: float = 30.0, **args: Any) -> Any:
    """One request to the running daemon of this ECOSYS_HOME."""
    return call(cli_env().layout.root / "daemon.json", cmd, args, timeout=timeout)


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


@click.command("up")
@click.option("--port", type=int, default=None, help="TCP port to listen on (default: config.json's, else 22800).")
@click.option("--host", default=None, help="Address to listen on (default 0.0.0.0).")
@click.option("--peer", "peers", multiple=True, metavar="HOST:PORT", help="A peer to dial (networks without multicast).")
@click.option("--no-mdns", is_flag=True, help="Do not announce or browse with zeroconf.")
@click.option("--mdns-interface", "interfaces", multiple=True, metavar="ADDR", help="Limit zeroconf to these addresses.")
@click.option("--gui-address", default=None, metavar="HOST:PORT",
              help="Where the dashboard listens (default: config.json's gui_address, else 127.0.0.1:22801).")
@click.option("--no-gui", is_flag=True, help="Do not serve the dashboard.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logs.")
def up_command(port: int | None, host: str | None, peers: tuple[str, ...], no_mdns: bool,
               interfaces: tuple[str, ...], gui_address: str | None, no_gui: bool, verbose: bool) -> None:
    """Run the Ecosys daemon in the foreground (Ctrl-C stops it)."""
    env = cli_env()
    setup_daemon_logging(env.layout.logs, verbose=verbose)
    config = read_config(env.layout)
    gui = None if no_gui else parse_gui_address(gui_address or str(config.get("gui_address", f"127.0.0.1:{GUI_PORT}")))
    node = Node(env.layout, port=port if port is not None else int(config.get("port", 22800)),
                host=host or str(config.get("host", "0.0.0.0")),
                peers=[*config.get("peers", []), *peers], mdns=not no_mdns and bool(config.get("mdns", True)),
                interfaces=list(interfaces) or config.get("mdns_interfaces"), gui_address=gui)
    run_daemon(node)


@click.command("gui")
@click.option("--print", "print_only", is_flag=True, help="Print the login link instead of opening a browser.")
def gui_command(print_only: bool) -> None:
    """Open the dashboard of the running daemon in the default browser, signed in (a one-time link)."""
    url = daemon_call("gui_login")["url"]
    if print_only:
        click.echo(url)
        return
    import webbrowser

    if not webbrowser.open(url):
        click.echo(f"No browser could be opened; open this link within a minute: {url}")


@click.command("stop")
def stop_command() -> None:
    """Stop the daemon running for this ECOSYS_HOME."""
    daemon_call("stop")
    click.echo("Stopping the daemon.")


@click.command("devices")
@json_option
def devices_command(as_json: bool) -> None:
    """List discovered and linked devices."""
    env = cli_env()
    env.require_setup()
    try:
        rows = daemon_call("status")["devices"]
    except DaemonNotRunning:
        rows = [device_row(d, None) for d in list_devices(env.store)]
    if as_json:
        echo_json(rows)
        return
    echo_table(["name", "id", "linked", "connected", "address"],
               [[r["name"], readable_id(r["device_id"]), "yes" if r["linked"] else "", "yes" if r["connected"] else "",
                 r["address"]] for r in rows], "no devices seen yet (is 'ecosys up' running?)")


@click.command("link")
@click.argument("device")
@click.option("--timeout", type=float, default=130.0, show_default=True, help="Seconds to wait for the other side.")
@click.option("--trust-apps", is_flag=True,
              help="DEVICE is yours: it may share app and grapin data here without asking each time.")
@click.option("--introducer", is_flag=True,
              help="DEVICE introduces the devices it is linked with: they are linked here without asking.")
def link_command(device: str, timeout: float, trust_apps: bool, introducer: bool) -> None:
    """Ask DEVICE (id or name) to link; its user accepts or refuses ('ecosys prompts' there). App and
    grapin data DEVICE shares later is accepted only after you say yes (SHARE), unless --trust-apps.
    With --introducer, DEVICE's own links are linked here too (and later ones as it makes them); it can
    add links only, never shares a task, and never brings back a device you unlinked here."""
    click.echo("Waiting for the other device: answer there with 'ecosys answer LINK yes' "
               "(after checking the id it shows against 'ecosys id' here)…", err=True)
    result = daemon_call("link", timeout=timeout + 5, device=device, timeout_s=timeout, trust_apps=trust_apps,
                         introducer=introducer)
    click.echo(f"Linked with {result['name'] or readable_id(result['device_id'])}.")
    if result.get("formerly_shared"):
        click.echo(f"Before the unlink it shared: {', '.join(result['formerly_shared'])}. Nothing was shared again; "
                   "use 'ecosys task share TASK --with DEVICE' for those you want back.")


@click.command("unlink")
@click.argument("device")
def unlink_command(device: str) -> None:
    """Forget DEVICE here and ask it to forget this device."""
    daemon_call("unlink", device=device)
    click.echo("Unlinked.")


@click.command("connect")
@click.argument("address", metavar="HOST:PORT")
def connect_command(address: str) -> None:
    """Dial a device at HOST:PORT now (it then appears in 'ecosys devices')."""
    result = daemon_call("connect", address=address)
    click.echo(f"Connected to {result['name'] or '?'} {readable_id(result['device_id'])}")


@click.command("share")
@click.argument("task")
@click.option("--with", "device", help="The linked device to share TASK with.")
@click.option("--all", "everyone", is_flag=True, help="Share TASK with every linked device not in it yet.")
@click.option("--timeout", type=float, default=130.0, show_default=True)
def share_command(task: str, device: str | None, everyone: bool, timeout: float) -> None:
    """Share sync TASK with a linked device (or all of them); the other side chooses where it goes.
    The task's other members learn of it and sync with it directly where they are linked with it."""
    if (device is None) == (not everyone):
        raise click.UsageError("give either --with DEVICE or --all")
    click.echo("Waiting for the other device: answer there with 'ecosys answer CHOOSELINKPATH FOLDER' "
               "(an empty answer refuses)…", err=True)
    if device is not None:
        result = daemon_call("share", timeout=timeout + 5, task=task, device=device, timeout_s=timeout)
        click.echo(f"{result['task']}: {result['note']}; the setup queue is on its way.")
        return
    result = daemon_call("share_all", timeout=timeout + 5, task=task, timeout_s=timeout)
    if not result["devices"]:
        click.echo(f"{result['task']}: every linked device is a member already.")
    failed = False
    for row in result["devices"]:
        who = row["name"] or readable_id(row["device_id"])
        if "error" in row:
            failed = True
            click.echo(f"{who}: {row['error']}", err=True)
        else:
            click.echo(f"{who}: {row['note']}; the setup queue is on its way.")
    if failed:
        raise SystemExit(1)


@click.command("unshare")
@click.argument("task")
@click.option("--with", "device", required=True, help="The member to remove from TASK.")
def unshare_command(task: str, device: str) -> None:
    """Remove DEVICE from sync TASK's members, on every member as they learn it: nothing more of TASK
    goes to it or comes from it, and what was pending for it is dropped. Its files stay where they are.
    Only a new 'task share' brings it back."""
    result = daemon_call("unshare", task=task, device=device)
    click.echo(f"{readable_id(result['device_id'])} is no longer a member of {result['task']}.")


@click.group("autostart")
def autostart_group() -> None:
    """Start the Ecosys daemon when you log in."""


def _entry():  # type: ignore[no-untyped-def]
    from ..autostart import entry_for

    return entry_for(cli_env().layout.root)


@autostart_group.command("enable")
def autostart_enable() -> None:
    """Make the daemon start at login."""
    from ..autostart import enable

    click.echo(enable(_entry()))


@autostart_group.command("disable")
def autostart_disable() -> None:
    """Stop starting the daemon at login."""
    from ..autostart import disable

    click.echo(disable(_entry()))


@autostart_group.command("status")
def autostart_status() -> None:
    """Say whether the daemon starts at login, and how."""
    entry = _entry()
    click.echo(f"enabled ({entry.kind}: {entry.path})" if entry.path.exists() else f"disabled (would use {entry.kind})")


def register(cli: click.Group) -> None:
    for command in (up_command, stop_command, gui_command, devices_command, link_command, unlink_command,
                    connect_command, autostart_group):
        cli.add_command(command)
    cli.commands["task"].add_command(share_command)  # type: ignore[attr-defined]
    cli.commands["task"].add_command(unshare_command)  # type: ignore[attr-defined]
