"""An example third-party Ecosys plugin: adds %shelf%, a grapin that uses it, and ``ecosys shelf``."""

import click

from ecosys_core.hookspecs import hookimpl
from ecosys_core.models import GrapinConfig
from ecosys_core.types import Placeholder


@hookimpl
def register_placeholders(register):
    register(Placeholder("shelf", lambda request: request.component.replace("%shelf%", "bookshelf"),
                         "the example plugin's shelf folder"))


@hookimpl
def register_grapins(registry):
    grapin = GrapinConfig.model_validate(
        {"AppName": "Example Books", "AppSyncDataFolderPath": "~/%shelf%/%username%", "NeedsFormat": True,
         "SupportedPlatforms": ["Linux", "Win32", "Darwin"], "AppDescription": "books of the example plugin"},
        context={"placeholders": registry.known_placeholders},
    )
    registry.add(grapin, "ecosys-example-plugin")


@hookimpl
def register_commands(cli):
    @cli.command("shelf")
    def shelf():
        """Say hello from the example plugin."""
        click.echo("hello from the example plugin")
