"""The Magasin plugs into Ecosys like any plugin (entry point ``ecosys``): its commands and its schema."""

from __future__ import annotations

from typing import Callable

import click

from ecosys_core.hookspecs import hookimpl


@hookimpl
def register_commands(cli: click.Group) -> None:
    from .cli import app_group, magasin_group

    cli.add_command(magasin_group)
    cli.add_command(app_group)


@hookimpl
def register_schemas(register: Callable[[str, dict], None]) -> None:
    from .index import index_schema  # the index model loads pydantic: not for every daemon

    register("magasin.schema.json", index_schema())


@hookimpl
def register_daemon_commands(register, daemon) -> None:  # type: ignore[no-untyped-def]
    from .daemon_commands import commands

    for name, command in commands(daemon).items():
        register(name, command)
