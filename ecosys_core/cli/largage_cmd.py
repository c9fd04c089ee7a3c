"""``ecosys send`` and ``ecosys largage``: one-time transfers to a nearby device (largage aérien)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from ..errors import EcosysError
from ..largage.offers import FINAL_STATES
from ..store.settings_kv import set_setting
from .env import cli_env, echo_json, echo_table, json_option
from .net_cmd import daemon_call
from .progress import transfer_progress

FINAL = frozenset(state.value for state in FINAL_STATES)


@click.command("send")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))
@click.option("--to", "device", help="The device to send to (id or name).")
@click.option("--cancel", "cancel", is_flag=True, help="Cancel unfinished transfers (all, or the offer ids given).")
@click.option("--no-wait", is_flag=True, help="Return once the offer is made.")
def send_command(paths: tuple[Path, ...], device: str | None, cancel: bool, no_wait: bool) -> None:
    """Send files (OTDL) or one folder (MOTDL) once to a nearby device, which accepts or declines.

    \b
    The other side is asked (ecosys prompts / ecosys answer OTDL yes); an offer nobody answers
    expires after 2 minutes. A device that is not linked with the receiver may offer only when the
    receiver allows it ('ecosys largage allow everyone'); once declined, it is refused without asking
    for 5 minutes (setting largage_cooldown_s). Your own linked devices may offer again at once."""
    if cancel:
        ids = [str(p) for p in paths] or [None]
        done = [x for i in ids for x in daemon_call("cancel", offer_id=i)]
        click.echo(f"Cancelled {len(done)} transfer(s)." if done else "Nothing to cancel.")
        return
    if not paths or not device:
        raise EcosysError("give the files or folder to send and --to DEVICE")
    offer = daemon_call("send", timeout=600, device=device, paths=[str(p.resolve()) for p in paths])
    click.echo(f"Offered {offer['count']} file(s), {offer['total']} bytes to {offer['peer']}; waiting for an answer "
               f"(offer {offer['offer_id']})…", err=True)
    if no_wait:
        return
    try:
        with transfer_progress() as bar:
            task = bar.add_task("waiting", total=offer["total"] or 1)
            while True:
                current = next((o for o in daemon_call("offers") if o["offer_id"] == offer["offer_id"]), None)
                if current is None:
                    raise EcosysError("the daemon forgot the offer")
                bar.update(task, completed=current["done"], description=current["state"])
                if current["state"] in FINAL:
                    break
                time.sleep(0.1)
    except KeyboardInterrupt:
        daemon_call("cancel", offer_id=offer["offer_id"])
        click.echo("Cancelled.", err=True)
        sys.exit(130)
    if current["state"] != "done":
        raise EcosysError(f"transfer {current['state']}{': ' + current['error'] if current['error'] else ''}")
    click.echo(f"Sent {current['count']} file(s) to {current['peer']}.")


@click.group("largage", invoke_without_command=True)
@json_option
@click.option("--watch", is_flag=True, help="Show progress bars until every transfer has ended.")
@click.pass_context
def largage_group(ctx: click.Context, as_json: bool, watch: bool) -> None:
    """Transfers in and out (largage aérien); received files land in ECOSYS_HOME/largage_aerien/."""
    if ctx.invoked_subcommand is not None:
        return
    offers = daemon_call("offers")
    if as_json:
        echo_json(offers)
        return
    if watch:
        with transfer_progress() as bar:
            tasks = {}
            while True:
                offers = daemon_call("offers")
                for o in offers:
                    label = f"{o['direction']} {o['peer']} ({o['state']})"
                    if o["offer_id"] not in tasks:
                        tasks[o["offer_id"]] = bar.add_task(label, total=o["total"] or 1)
                    bar.update(tasks[o["offer_id"]], completed=o["done"], description=label)
                if all(o["state"] in FINAL | {"sent"} for o in offers):
                    break
                time.sleep(0.2)
        return
    echo_table(["offer", "direction", "device", "state", "files", "bytes", "saved as"],
               [[o["offer_id"], o["direction"], o["peer"], o["state"], o["count"], f"{o['done']}/{o['total']}",
                 ", ".join(o["saved"])] for o in offers], "no transfers since the daemon started")


@largage_group.command("allow")
@click.argument("who", type=click.Choice(["linked", "everyone"]))
def allow_command(who: str) -> None:
    """Accept offers from linked devices only (default) or from everyone nearby (still asked each time)."""
    set_setting(cli_env().store, "largage_everyone", "1" if who == "everyone" else "0")
    click.echo(f"Offers accepted from: {who} (restart 'ecosys up' if it runs).")


def register(cli: click.Group) -> None:
    cli.add_command(send_command)
    cli.add_command(largage_group)
