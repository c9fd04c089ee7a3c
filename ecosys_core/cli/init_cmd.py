"""``ecosys init``: create ECOSYS_HOME, its store and this device's name."""

from __future__ import annotations

import socket

import click

from ..store.settings_kv import get_setting, set_setting
from .env import cli_env


@click.command("init")
@click.option("--name", help="A name for this device, shown to your other devices (default: host name).")
def init_command(name: str | None) -> None:
    """Create the Ecosys folder and database (safe to run again; --name renames this device)."""
    env = cli_env()
    store = env.store
    current = get_setting(store, "device_name")
    if name is not None:
        name = name.strip()
        if not name:
            raise click.BadParameter("must not be empty", param_hint="--name")
        set_setting(store, "device_name", name)
    elif current is None:
        set_setting(store, "device_name", socket.gethostname() or "ecosys-device")
    click.echo(f"Ecosys home: {env.layout.root}")
    click.echo(f"Device name: {get_setting(store, 'device_name')}")
    click.echo(f"Device id:   {env.identity.readable}")


@click.command("id")
@click.option("--hex", "as_hex", is_flag=True, help="Print the 64 hex digits instead of the readable form.")
def id_command(as_hex: bool) -> None:
    """Print this device's id (give it to your other devices to link them)."""
    env = cli_env()
    env.require_setup()
    identity = env.identity
    click.echo(identity.device_id if as_hex else identity.readable)


def register(cli: click.Group) -> None:
    cli.add_command(init_command)
    cli.add_command(id_command)
