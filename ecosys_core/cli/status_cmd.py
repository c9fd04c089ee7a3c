"""``ecosys status``: this device, its tasks, and what each linked device is still owed (retard)."""

from __future__ import annotations

import click

from ..device_ids import readable_id
from .env import cli_env, echo_json, json_option


def local_status() -> dict:
    """The status read from the store, for when no daemon runs (nobody is connected then)."""
    from ..status import collect_status
    from ..store.settings_kv import device_name

    env = cli_env()
    return collect_status(env.store, name=device_name(env.store), readable_id=env.identity.readable,
                          me=env.identity.device_id)


@click.command("status")
@json_option
def status_command(as_json: bool) -> None:
    """Show this device, its sync tasks and the pending events per device (live from the daemon if it runs)."""
    from ..net.control import DaemonNotRunning, call

    cli_env().require_setup()
    try:
        status = call(cli_env().layout.root / "daemon.json", "status")
        status["daemon"] = True
    except DaemonNotRunning:
        status = local_status()
        status["daemon"] = False
    if as_json:
        echo_json(status)
        return
    click.echo(f"Device {status['device']['name']}  {status['device']['id']}"
               + ("" if status["daemon"] else "  (daemon not running)"))
    click.echo(f"  log: {status['device']['log']}")
    for device in status["devices"]:
        state = "connected" if device["connected"] else "offline"
        click.echo(f"  {'linked' if device['linked'] else 'seen'} device {device['name'] or device['id']}: {state}")
        for t in device["transfers"]:
            pct = 100 * t["done"] // t["total"] if t["total"] else 100
            click.echo(f"    {t['direction']} {t['path']}: {pct}% of {t['total']} bytes")
    if not status["tasks"]:
        click.echo("No sync tasks.")
    for task in status["tasks"]:
        pending = ", ".join(f"{d}: {n}" for d, n in task["pending"].items()) or "nothing"
        click.echo(f"- {task['name']} ({task['kind']}{', backup' if task['backup_mode'] else ''}) {task['root']}")
        click.echo(f"  {task['files']} files, {task['bytes'] / 2**20:.1f} MiB; pending: {pending}")
        for part in task.get("parts", []):
            click.echo(f"  {part['name']}: {part['path']}")
        if task.get("waiting"):
            click.echo(f"  waiting: {task['waiting']}")
        for m in task.get("members", []):
            if m["state"] == "this device":
                continue
            seen = f"last seen {m['last_seen'][:16].replace('T', ' ')}" if m["last_seen"] else "never seen"
            away = "  AWAY for long: still kept, see 'ecosys task unshare'" if m["away"] else ""
            click.echo(f"  member {m['name'] or readable_id(m['device_id'])}: {m['state']}, "
                       f"{m['pending']} pending, {seen}{away}")


def register(cli: click.Group) -> None:
    cli.add_command(status_command)
