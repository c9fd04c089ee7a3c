"""The ``ecosys`` command line: a thin click layer over the library. Plugins add commands through
``register_commands``; every error a user can cause becomes one line on stderr and a non-zero exit."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from .. import __version__
from ..errors import EcosysError
from .env import add_home_option_everywhere, root_home_option

log = logging.getLogger("ecosys")


class UserError(click.ClickException):
    """An EcosysError on its way to the terminal."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


class EcosysGroup(click.Group):
    """The root group: turns our exceptions, and any unexpected one, into one readable line."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except EcosysError as exc:
            raise UserError(str(exc), exc.exit_code) from None
        except click.UsageError as exc:  # one line too, naming where the help is
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            raise UserError(exc.format_message() + hint, 2) from None
        except (click.exceptions.Exit, click.ClickException, click.Abort, KeyboardInterrupt, SystemExit):
            raise
        except BrokenPipeError:  # output piped into a command that stopped reading (| head)
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise click.exceptions.Exit(0) from None
        except Exception as exc:  # last resort: never a traceback unless asked for
            if os.environ.get("ECOSYS_DEBUG"):
                raise
            log.debug("unexpected error", exc_info=True)
            raise UserError(f"unexpected {type(exc).__name__}: {exc} (set ECOSYS_DEBUG=1 for details)", 70) from None


@click.group(cls=EcosysGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ecosys", message="%(prog)s %(version)s")
@root_home_option
def cli() -> None:
    """Ecosys keeps your folders and app data identical across your own devices, with no server."""


def _register_builtin_commands() -> None:
    from . import (
        grapin_cmd,
        init_cmd,
        largage_cmd,
        net_cmd,
        plugins_cmd,
        prompts_cmd,
        schemas_cmd,
        status_cmd,
        task_cmd,
    )

    for module in (init_cmd, plugins_cmd, grapin_cmd, task_cmd, prompts_cmd, schemas_cmd, status_cmd, net_cmd,
                   largage_cmd):
        module.register(cli)


def _register_plugin_commands() -> None:
    from ..plugins import get_plugin_manager
    from ..settings import layout

    # Commands do not depend on ECOSYS_HOME, so the default layout is enough to ask the plugins.
    try:
        get_plugin_manager(layout()).hook.register_commands(cli=cli)
    except Exception as exc:  # a broken plugin must not take the CLI down
        click.echo(f"warning: a plugin failed to add its commands: {exc}", err=True)


def build_cli() -> click.Group:
    """Return the ``ecosys`` group with builtin and plugin commands, each with ``--home``."""
    if not cli.commands:
        _register_builtin_commands()
        _register_plugin_commands()
        add_home_option_everywhere(cli)
    return cli


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.INFO if os.environ.get("ECOSYS_VERBOSE") else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    build_cli()(prog_name="ecosys")
    sys.exit(0)  # pragma: no cover - click exits itself
