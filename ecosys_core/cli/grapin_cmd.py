"""``ecosys grapin``: the grapins Ecosys knows, where each one's data lives here, and validation."""

from __future__ import annotations

from pathlib import Path

import click

from ..config_files import load_model_file
from ..errors import ConfigError, EcosysError, NotFound, PathNotResolved
from ..grapins import GrapinRegistry
from ..importers.common import IMPORTED, SKIPPED, WIDENED, ImportResult, write_import
from ..importers.ludusavi import import_ludusavi
from ..importers.mackup import find_applications, import_mackup
from ..models import GrapinConfig
from ..resolve import current_context, resolve_grapin, resolve_parts, surely_absent
from .env import cli_env, echo_json, echo_table, json_option, warn


def _resolution(grapin: GrapinConfig) -> tuple[str | None, str | None]:
    """Return (path, None) or (None, reason)."""
    try:
        path = resolve_grapin(grapin, cli_env().plugins.placeholders())
    except PathNotResolved as exc:
        return None, str(exc)
    return str(path), None if path.exists() else "folder does not exist yet"


def _rows(entries: list, here: bool) -> list[dict]:
    rows = []
    context = current_context()
    for entry in entries:
        if here and not entry.checked and entry.raw is not None and surely_absent(entry.raw, context):
            continue
        try:
            path, reason = _resolution(entry.item)
        except ConfigError as exc:  # an imported grapin found broken when first used
            warn(str(exc))
            continue
        if here and (path is None or reason is not None):
            continue
        rows.append({"name": entry.item.app_name, "platforms": entry.item.supported_platforms,
                     "path": path, "problem": reason, "source": entry.source,
                     "description": entry.item.app_description})
    return rows


def _print_rows(rows: list[dict], as_json: bool, empty: str) -> None:
    if as_json:
        echo_json(rows)
        return
    echo_table(["grapin", "platforms", "data folder here"],
               [[r["name"], ",".join(r["platforms"]), r["path"] if r["path"] and not r["problem"] else
                 f"({r['problem']})" if not r["path"] else f"{r['path']} ({r['problem']})"] for r in rows],
               empty)


def _catalogue() -> GrapinRegistry:
    registry = cli_env().plugins.grapins()
    for error in registry.errors:
        warn(str(error))
    return registry


@click.group("grapin")
def grapin_group() -> None:
    """Grapins: where existing apps keep the data Ecosys can sync."""


@grapin_group.command("list")
@click.option("--here", is_flag=True, help="Only the apps whose data is on this machine.")
@json_option
def list_command(here: bool, as_json: bool) -> None:
    """List known grapins (bundled, dropped in, imported) and where each one's data is on this machine."""
    _print_rows(_rows(list(_catalogue()), here), as_json,
                "no grapin finds its app's data here" if here else "no grapins")


@grapin_group.command("search")
@click.argument("text")
@click.option("--here", is_flag=True, help="Only the apps whose data is on this machine.")
@json_option
def search_command(text: str, here: bool, as_json: bool) -> None:
    """Grapins whose name or description holds TEXT (any case; every word of TEXT must be there)."""
    words = text.casefold().split()
    found = [e for e in _catalogue()
             if all(w in f"{e.text('AppName')} {e.text('AppDescription')}".casefold() for w in words)]
    _print_rows(_rows(found, here), as_json, f"no grapin matches {text!r}")


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
    if not entry.item.single_folder:  # several places: each with its name in the task
        for part in resolve_parts(entry.item, cli_env().plugins.placeholders()):
            click.echo(f"{part.name}: {part.path}")
        return
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


@grapin_group.group("import")
def import_group() -> None:
    """Make grapins of another tool's definitions, kept in ECOSYS_HOME/plugins/imported-<source>/."""


def _finish_import(result: ImportResult, dry_run: bool, as_json: bool) -> None:
    env = cli_env()
    summary = {k: result.count(k) for k in (IMPORTED, WIDENED, SKIPPED)}
    platforms = {p: result.usable_on(p) for p in ("Linux", "Darwin", "Win32")}
    written = None if dry_run else str(write_import(env.layout.plugins, result))
    if as_json:
        echo_json({**result.source, **summary, "platforms": platforms, "written": written,
                   "rows": [vars(r) | {"platforms": list(r.platforms)} for r in result.rows] if dry_run else []})
        return
    if dry_run:
        echo_table(["definition", "outcome", "platforms", "reason"],
                   [[r.name, r.outcome, ",".join(r.platforms), r.reason] for r in result.rows], "no definitions")
    counts = ", ".join(f"{n} {k}" for k, n in summary.items())
    usable = ", ".join(f"{n} on {p}" for p, n in platforms.items() if n)
    where = "nothing written (--dry-run)" if dry_run else f"written to {written}"
    click.echo(f"{result.source['source']}: {counts} ({usable}); {where}")


@import_group.command("mackup")
@click.argument("folder", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what each definition would become; write nothing.")
@json_option
def import_mackup_command(folder: Path | None, dry_run: bool, as_json: bool) -> None:
    """Import Mackup's application definitions: FOLDER is an 'applications' folder or ~/.mackup; without
    it, those of the installed mackup package. They are GPL-3.0-or-later and stay on this machine."""
    _finish_import(import_mackup(find_applications(folder)), dry_run, as_json)


@import_group.command("ludusavi")
@click.argument("manifest", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="Show what each game would become; write nothing.")
@json_option
def import_ludusavi_command(manifest: Path, dry_run: bool, as_json: bool) -> None:
    """Import the games of a Ludusavi MANIFEST (its manifest.yaml, read as a stream). Paths under a
    game's install folder and registry keys are left out, with the reason."""
    if not manifest.is_file():
        raise NotFound(f"{manifest} does not exist")
    _finish_import(import_ludusavi(manifest), dry_run, as_json)


def register(cli: click.Group) -> None:
    cli.add_command(grapin_group)
