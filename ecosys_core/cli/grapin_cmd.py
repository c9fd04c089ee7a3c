"""``ecosys grapin``: the grapins Ecosys knows, where each one's data lives here, and validation."""

from __future__ import annotations

from pathlib import Path

import click

from ..config_files import load_model_file
from ..errors import ConfigError, EcosysError, PathNotResolved
from ..grapins import GrapinRegistry
from ..models import GrapinConfig
from ..resolve import current_context, resolve_grapin
from .env import cli_env, echo_json, echo_table, json_option, warn


def _resolution(grapin: GrapinConfig) -> tuple[str | None, str | None]:
    """Return (path, None) or (None, reason)."""
    try:
        path = resolve_grapin(grapin, cli_env().plugins.placeholders())
    except PathNotResolved as exc:
        return None, str(exc)
    return str(path), None if path.is_dir() else "folder does not exist yet"


def _catalogue() -> GrapinRegistry:
    registry = cli_env().plugins.grapins()
    for error in registry.errors:
        warn(str(error))
    return registry


@click.group("grapin")
def grapin_group() -> None:
    """Grapins: where existing apps keep the data Ecosys can sync."""


@grapin_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List known grapins and where each one's data is on this machine."""
    rows = []
    for entry in _catalogue():
        path, reason = _resolution(entry.item)
        rows.append({"name": entry.item.app_name, "platforms": entry.item.supported_platforms,
                     "path": path, "problem": reason, "source": entry.source})
    if as_json:
        echo_json(rows)
        return
    echo_table(["grapin", "platforms", "data folder here"],
               [[r["name"], ",".join(r["platforms"]), r["path"] if r["path"] and not r["problem"] else
                 f"({r['problem']})" if not r["path"] else f"{r['path']} ({r['problem']})"] for r in rows],
               "no grapins")


@grapin_group.command("show")
@click.argument("name")
@json_option
def show_command(name: str, as_json: bool) -> None:
    """Show one grapin's definition, where it comes from and where it resolves."""
    entry = _catalogue().get(name)
    path, reason = _resolution(entry.item)
    data = {"grapin": entry.item.to_json_dict(), "source": entry.source, "path": path, "problem": reason}
    if as_json:
        echo_json(data)
        return
    g = entry.item
    click.echo(f"{g.app_name}: {g.app_description}")
    click.echo(f"  source:    {entry.source}")
    click.echo(f"  platforms: {', '.join(g.supported_platforms)}")
    click.echo(f"  path here: {g.path_for(current_context().platform)}")
    click.echo(f"  resolves:  {path or '-'}{f'  ({reason})' if reason else ''}")


@grapin_group.command("resolve")
@click.argument("name")
def resolve_command(name: str) -> None:
    """Print the folder NAME's data lives in on this machine, or why it cannot be found."""
    entry = _catalogue().get(name)
    path = resolve_grapin(entry.item, cli_env().plugins.placeholders())
    click.echo(str(path))
    if not path.is_dir():
        warn(f"{path} does not exist yet (is {entry.item.app_name} installed and started once?)")


@grapin_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
def validate_command(files: tuple[Path, ...]) -> None:
    """Check grapin JSON files; each problem names the file and the field."""
    context = {"placeholders": frozenset(cli_env().plugins.placeholders())}
    failures = 0
    for path in files:
        try:
            grapin = load_model_file(GrapinConfig, path, context=context)
        except ConfigError as exc:
            failures += 1
            click.echo(f"error: {exc}", err=True)
            continue
        click.echo(f"ok: {path} ({grapin.app_name})")
    if failures:
        raise EcosysError(f"{failures} of {len(files)} file(s) invalid")


def register(cli: click.Group) -> None:
    cli.add_command(grapin_group)
