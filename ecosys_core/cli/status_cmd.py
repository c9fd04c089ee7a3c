"""``ecosys status``: this device, its tasks, and what each linked device is still owed (retard)."""

from __future__ import annotations

import click
from sqlalchemy import func, select

from ..store.devices import list_devices
from ..store.index import pending_counts, task_row
from ..store.settings_kv import get_setting
from ..store.tables import FileEntry
from ..store.tasks import list_tasks
from .env import cli_env, echo_json, json_option


def collect_status() -> dict:
    """The status as plain data (what --json prints)."""
    env = cli_env()
    names = {d.device_id: d.name or d.device_id[:12] for d in list_devices(env.store)}
    tasks = []
    with env.store.session() as session:
        for task in list_tasks(env.store):
            row = task_row(session, task.secure_id)
            files, size = session.execute(
                select(func.count(), func.coalesce(func.sum(FileEntry.size), 0))
                .where(FileEntry.task_id == row.id, FileEntry.deleted.is_(False))
            ).one()
            pending = pending_counts(session, row.id)
            tasks.append({"name": task.name, "secure_id": task.secure_id, "root": str(task.root),
                          "kind": task.kind.value, "backup_mode": task.backup_mode, "files": files, "bytes": size,
                          "pending": {names.get(d, d[:12]): n for d, n in sorted(pending.items())}})
    return {"device": {"name": get_setting(env.store, "device_name"), "id": env.identity.readable},
            "devices": [{"name": d.name, "device_id": d.device_id, "linked": d.linked, "connected": False}
                        for d in list_devices(env.store)],
            "tasks": tasks}


@click.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Show this device, its sync tasks and the pending events per device (live from the daemon if it runs)."""
    from ..net.control import DaemonNotRunning, call

    try:
        status = call(cli_env().layout.root / "daemon.json", "status")
        status["daemon"] = True
    except DaemonNotRunning:
        status = collect_status()
        status["daemon"] = False
    if as_json:
        echo_json(status)
        return
    click.echo(f"Device {status['device']['name']}  {status['device']['id']}"
               + ("" if status["daemon"] else "  (daemon not running)"))
    for device in status.get("devices", []):
        state = "connected" if device.get("connected") else "offline"
        click.echo(f"  {'linked' if device['linked'] else 'seen'} device {device['name'] or device.get('device_id', device.get('id', ''))[:12]}: {state}")
        for t in device.get("transfers", []):
            pct = 100 * t["done"] // t["total"] if t["total"] else 100
            click.echo(f"    {t['direction']} {t['path']}: {pct}% of {t['total']} bytes")
    if not status["tasks"]:
        click.echo("No sync tasks.")
    for task in status["tasks"]:
        pending = ", ".join(f"{d}: {n}" for d, n in task["pending"].items()) or "nothing"
        click.echo(f"- {task['name']} ({task['kind']}{', backup' if task.get('backup_mode') else ''}) {task['root']}")
        if "files" in task:
            click.echo(f"  {task['files']} files, {task['bytes'] / 2**20:.1f} MiB; pending: {pending}")
        else:
            click.echo(f"  pending: {pending}")


def register(cli: click.Group) -> None:
    cli.add_command(status_command)
