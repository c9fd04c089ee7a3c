"""``ecosys task``: create, list and remove sync tasks."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import EcosysError, NotFound, PathNotResolved
from ..grapin_layout import grapin_layout
from ..status import task_members
from ..store.tasks import add_task, get_task, list_tasks, remove_task
from ..sync.ignores import IGNORE_FILE, ignore_defaults, read_patterns, write_patterns
from ..types import TaskKind
from .env import cli_env, echo_json, echo_table, json_option, notify_daemon


@click.group("task")
def task_group() -> None:
    """Sync tasks: folders kept identical on your linked devices."""


@task_group.command("add")
@click.argument("path", required=False, type=click.Path(path_type=Path, file_okay=False))
@click.option("--grapin", "grapin_name", help="Sync the data folder of this grapin's app instead of PATH.")
@click.option("--name", help="Task name (default: the folder's name, or the grapin's).")
@click.option("--backup", is_flag=True, help="Backup mode: deletions on this device are not sent.")
def add_command(path: Path | None, grapin_name: str | None, name: str | None, backup: bool) -> None:
    """Create a sync task for folder PATH, or for a grapin's app data with --grapin."""
    env = cli_env()
    if (path is None) == (grapin_name is None):
        raise EcosysError("give either a PATH or --grapin NAME (see 'ecosys task add --help')")
    if grapin_name is not None:
        grapin = env.plugins.grapins().get(grapin_name).item
        try:
            layout = grapin_layout(grapin, env.plugins.placeholders())
        except PathNotResolved as exc:
            raise NotFound(f"{grapin.app_name}'s data is not on this machine: {exc} (is the app installed and "
                           "started once?)") from None
        task = add_task(env.store, name=name or grapin.app_name, root=layout.root or env.layout.root,
                        kind=TaskKind.GRAPIN, source=grapin.app_name, backup_mode=backup, parts=layout.parts,
                        patterns=layout.patterns, lock_files=layout.lock_files, process_names=layout.process_names)
    else:
        assert path is not None
        if not path.is_dir():
            raise NotFound(f"folder {path} does not exist")
        task = add_task(env.store, name=name or path.resolve().name or str(path.resolve()), root=path,
                        kind=TaskKind.FOLDER, backup_mode=backup)
    notify_daemon()
    mode = " (backup mode)" if task.backup_mode else ""
    where = ", ".join(f"{p.name} = {p.path}" for p in task.parts) if task.parts else str(task.root)
    click.echo(f"Added {task.kind.value} task {task.name!r}{mode}: {where} [secure_id {task.secure_id}]")


@task_group.command("list")
@json_option
def list_command(as_json: bool) -> None:
    """List sync tasks."""
    env = cli_env()
    env.require_setup()
    tasks = list_tasks(env.store)
    if as_json:
        members = task_members(env.store, env.identity.device_id)
        echo_json([{"name": t.name, "secure_id": t.secure_id, "root": str(t.root), "kind": t.kind.value,
                    "source": t.source, "backup_mode": t.backup_mode, "created_at": t.created_at.isoformat(),
                    "parts": [{"name": p.name, "path": str(p.path), "file": p.file} for p in t.parts],
                    "members": members.get(t.secure_id, [])}
                   for t in tasks])
        return
    echo_table(["name", "kind", "backup", "folder", "secure_id"],
               [[t.name, t.kind.value + (f" ({t.source})" if t.source and t.source != t.name else ""),
                 "yes" if t.backup_mode else "", t.root, t.secure_id] for t in tasks],
               "no sync tasks (add one with 'ecosys task add PATH')")


@task_group.command("remove")
@click.argument("name")
def remove_command(name: str) -> None:
    """Forget sync task NAME. Its folder and files stay where they are."""
    task = remove_task(cli_env().store, name)
    notify_daemon()
    click.echo(f"Removed task {task.name!r}; its files in {task.root} were left untouched.")


@task_group.command("scan")
@click.argument("name", required=False)
def scan_command(name: str | None) -> None:
    """Index the folder of task NAME (every task without NAME) now: by the running daemon, under its
    engine's lock, or here when no daemon runs."""
    from ..net.control import DaemonNotRunning, call

    env = cli_env()
    try:
        reports = call(env.layout.root / "daemon.json", "scan", {"task": name}, timeout=3600)
    except DaemonNotRunning:
        tasks = [get_task(env.store, name)] if name else list_tasks(env.store)
        reports = [{"task": task.name, **vars(env.engine.scan(task.secure_id))} for task in tasks]
    for r in reports:
        click.echo(f"{r['task']}: {r['files_seen']} files, {r['changed']} changed, {r['deleted']} deleted, "
                   f"{r['bytes_hashed'] / 2**20:.1f} MiB hashed")


@task_group.command("ignore")
@click.argument("name")
@click.argument("patterns", nargs=-1)
@click.option("--remove", "removed", multiple=True, metavar="PATTERN", help="Take this line out (repeatable).")
@json_option
def ignore_command(name: str, patterns: tuple[str, ...], removed: tuple[str, ...], as_json: bool) -> None:
    """Show the ignore patterns of task NAME, or add PATTERNS to its .ecosysignore.

    Patterns are gitignore-style ('node_modules/', '*.tmp', '!keep.tmp', '**/build'), with Syncthing's
    '(?i)' (any case) and '(?d)' (may be deleted when it blocks a folder's deletion) prefixes, '#include
    FILE', and '#' or '//' comments. Ignored files are neither sent, nor deleted, nor overwritten; the
    daemon reads the file again when it changes. The file itself stays on this device.
    """
    env = cli_env()
    task = get_task(env.store, name)
    lines = read_patterns(task.root)
    if patterns or removed:
        missing = [line for line in removed if line not in lines]
        if missing:
            raise NotFound(f"{task.root / IGNORE_FILE} has no line {missing[0]!r}")
        lines = [line for line in lines if line not in removed]
        lines += [line for line in dict.fromkeys(patterns) if line not in lines]
        write_patterns(task.root, lines)
    defaults = list(ignore_defaults(task))
    if as_json:
        echo_json({"task": task.name, "file": str(task.root / IGNORE_FILE), "patterns": lines, "defaults": defaults})
        return
    if defaults:
        click.echo(f"default for app data: {' '.join(defaults)}")
    if not lines:
        click.echo(f"no patterns in {task.root / IGNORE_FILE} (add one with 'ecosys task ignore {task.name} PATTERN')")
    for line in lines:
        click.echo(line)


def register(cli: click.Group) -> None:
    cli.add_command(task_group)

