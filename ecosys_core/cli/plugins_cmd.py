"""``ecosys plugins``: what is loaded, which hooks each plugin implements."""

from __future__ import annotations

import click

from .env import cli_env, echo_json, echo_table, json_option


@click.command("plugins")
@json_option
def plugins_command(as_json: bool) -> None:
    """List loaded plugins (builtin ones included) and the hooks each implements."""
    rows = cli_env().plugins.plugin_rows()
    if as_json:
        echo_json(rows)
        return
    echo_table(
        ["name", "version", "hooks"],
        [[r["name"], r["version"] or "builtin", ", ".join(r["hooks"])] for r in rows],
        "no plugins",
    )


def register(cli: click.Group) -> None:
    cli.add_command(plugins_command)
