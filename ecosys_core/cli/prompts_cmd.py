"""``ecosys prompts`` / ``ecosys answer``: the command-line front end of the ``.btf`` prompts."""

from __future__ import annotations

import click

from ..prompt_answers import check_answer
from ..prompts import Prompts
from .env import cli_env, echo_json, echo_table, json_option


def _prompts() -> Prompts:
    return Prompts(cli_env().layout.prompts)


@click.command("prompts")
@json_option
def prompts_command(as_json: bool) -> None:
    """List questions Ecosys is waiting for you to answer."""
    pending = _prompts().pending()
    if as_json:
        echo_json([p.to_json() for p in pending])
        return
    echo_table(["id", "flag", "asked", "question"],
               [[p.id, p.flag, p.created_at.strftime("%Y-%m-%d %H:%M:%S"), p.context] for p in pending],
               "no pending prompts")


@click.command("answer")
@click.argument("flag")
@click.argument("value")
def answer_command(flag: str, value: str) -> None:
    """Answer the oldest pending prompt of FLAG (or the prompt with that id) with VALUE: yes or no for
    LINK, OTDL and MOTDL; a folder for CHOOSELINKPATH (an empty VALUE refuses the task). An answer that
    cannot be used is refused with the reason, and the question stays open."""
    prompts = _prompts()
    prompt = prompts.find(flag)
    prompts.give(prompt.id, check_answer(prompt.flag, value, lambda: cli_env().store))
    click.echo(f"Answered {prompt.id}.")


def register(cli: click.Group) -> None:
    cli.add_command(prompts_command)
    cli.add_command(answer_command)
