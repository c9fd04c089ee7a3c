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


# Which module adds each builtin command: a command's module (and what it imports) is loaded only when
# that command runs, so `ecosys --version` or a call to the daemon does not import the store or the models.
BUILTIN: dict[str, str] = {
    "init": "init_cmd", "id": "init_cmd", "plugins": "plugins_cmd", "grapin": "grapin_cmd", "task": "task_cmd",
    "prompts": "prompts_cmd", "answer": "prompts_cmd", "schemas": "schemas_cmd", "status": "status_cmd",
    "up": "net_cmd", "stop": "net_cmd", "gui": "net_cmd", "devices": "net_cmd", "link": "net_cmd", "unlink": "net_cmd",
    "connect": "net_cmd", "autostart": "net_cmd", "send": "largage_cmd", "largage": "largage_cmd",
}
# net_cmd adds 'task share' and 'task unshare' to the task group: each needs the other loaded
_NEEDS = {"net_cmd": ("task_cmd",)}
_ALSO = {"task_cmd": ("net_cmd",)}


class EcosysGroup(click.Group):
    """The root group: loads each builtin command's module when it is asked for (plugins' commands when a
    name is not a builtin one, or for the list), and turns our exceptions, and any unexpected one, into
    one readable line."""

    _loaded: set[str]
    _plugins_loaded = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = BUILTIN.get(cmd_name)
        if module is not None:
            self._load(module)
        elif cmd_name not in self.commands:
            self._load_plugins()
        return self.commands.get(cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in sorted(set(BUILTIN.values())):
            self._load(module)
        self._load_plugins()
        return sorted(self.commands)

    def _load(self, module: str) -> None:
        loaded = self.__dict__.setdefault("_loaded", set())
        if module in loaded:
            return
        for needed in _NEEDS.get(module, ()):
            self._load(needed)
        if module in loaded:  # loaded meanwhile, as what a needed module needs
            return
        loaded.add(module)
        import importlib

        before = set(self.commands)
        importlib.import_module(f"{__name__}.{module}").register(self)
        for name in set(self.commands) - before:
            add_home_option_everywhere(self.commands[name])
        if "task" in self.commands:  # commands added to the task group later get theirs too
            add_home_option_everywhere(self.commands["task"])
        for also in _ALSO.get(module, ()):
            self._load(also)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        before = set(self.commands)
        _register_plugin_commands(self)
        for name in set(self.commands) - before:
            add_home_option_everywhere(self.commands[name])

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


def _register_plugin_commands(group: click.Group) -> None:
    from ..plugins import get_plugin_manager
    from ..settings import layout

    # Commands do not depend on ECOSYS_HOME, so the default layout is enough to ask the plugins.
    try:
        get_plugin_manager(layout()).hook.register_commands(cli=group)
    except Exception as exc:  # a broken plugin must not take the CLI down
        click.echo(f"warning: a plugin failed to add its commands: {exc}", err=True)


def build_cli() -> click.Group:
    """Return the ``ecosys`` group; its builtin and plugin commands (each with ``--home``) are loaded
    when asked for."""
    return cli


def main() -> None:
    """Console-script entry point."""
    logging.basicConfig(level=logging.INFO if os.environ.get("ECOSYS_VERBOSE") else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    build_cli()(prog_name="ecosys")
    sys.exit(0)  # pragma: no cover - click exits itself
