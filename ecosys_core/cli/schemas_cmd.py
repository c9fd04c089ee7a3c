"""``ecosys schemas export DIR``: write the JSON Schemas of the models."""

from __future__ import annotations

from pathlib import Path

import click

from ..schemas import write_schemas
from .env import cli_env


@click.group("schemas")
def schemas_group() -> None:
    """JSON Schemas of grapins, apps and the Magasin index."""


@schemas_group.command("export")
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
def export_command(directory: Path) -> None:
    """Write every JSON Schema into DIRECTORY."""
    for path in write_schemas(directory, cli_env().plugins.hook):
        click.echo(str(path))


def register(cli: click.Group) -> None:
    cli.add_command(schemas_group)
