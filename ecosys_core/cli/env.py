"""What every command needs, built lazily from ``--home``: the home layout, the store, the plugins."""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

import click

from ..errors import EcosysError
from ..settings import HOME_ENV, HomeLayout, layout

if TYPE_CHECKING:  # imported when first used: a command that talks to the daemon loads none of them
    from ..net.identity import Identity
    from ..plugins import EcosysPlugins
    from ..store import Store
    from ..sync.engine import SyncEngine

_HOME_KEY = "ecosys.home"


class CliEnv:
    """Per-invocation state of the CLI. Nothing is opened until a command asks for it."""

    def __init__(self, home: Path | None) -> None:
        self.layout: HomeLayout = layout(home)

    def require_setup(self) -> None:
        """For commands that only read: refuse a home that was never set up rather than create one."""
        if not self.layout.root.is_dir():
            raise EcosysError(f"no Ecosys home at {self.layout.root} yet: run 'ecosys init' there first "
                              "(or check --home / ECOSYS_HOME)")

    @cached_property
    def store(self) -> Store:
        from ..store import open_store

        self.layout.ensure()
        return open_store(self.layout.database)

    @cached_property
    def plugins(self) -> EcosysPlugins:
        from ..plugins import get_plugin_manager

        return get_plugin_manager(self.layout)

    @cached_property
    def identity(self) -> Identity:
        from ..net.identity import load_or_create_identity

        self.layout.ensure()
        return load_or_create_identity(self.layout.identity)

    @cached_property
    def engine(self) -> SyncEngine:
        from ..sync.engine import SyncEngine
        from ..sync.objects import ObjectStore

        return SyncEngine(self.store, ObjectStore(self.layout.objects), self.identity.device_id, self.plugins.hook)


def _remember_home(ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    if value is not None:
        ctx.find_root().meta[_HOME_KEY] = value
    return value


def root_home_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--home`` on the ``ecosys`` group, falling back to the ECOSYS_HOME variable."""
    return click.option(
        "--home", type=click.Path(file_okay=False, path_type=Path), envvar=HOME_ENV, expose_value=False,
        callback=_remember_home, is_eager=True, help=f"Ecosys state folder (default: ${HOME_ENV} or the user data dir).",
    )(f)


def leaf_home_option() -> click.Option:
    """``--home`` for a subcommand; it overrides the group's option and the variable."""
    return click.Option(
        ["--home"], type=click.Path(file_okay=False, path_type=Path), expose_value=False,
        callback=_remember_home, is_eager=True, help="Ecosys state folder (same as 'ecosys --home').",
    )


def add_home_option_everywhere(command: click.Command) -> None:
    """Give every subcommand of ``command`` (plugins' included) its own ``--home`` option."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_home_option_everywhere(sub)
    if not any(isinstance(p, click.Option) and "--home" in p.opts for p in command.params):
        command.params.append(leaf_home_option())


def cli_env() -> CliEnv:
    """The CliEnv of the running invocation (created on first use)."""
    root = click.get_current_context().find_root()
    if "ecosys.env" not in root.meta:
        root.meta["ecosys.env"] = CliEnv(root.meta.get(_HOME_KEY))
    return root.meta["ecosys.env"]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def echo_table(headers: Iterable[str], rows: Iterable[Iterable[Any]], empty: str) -> None:
    """Print a rich table, or ``empty`` when there are no rows."""
    from rich.console import Console
    from rich.table import Table

    rows = list(rows)
    if not rows:
        click.echo(empty)
        return
    table = Table(*headers, show_edge=False, pad_edge=False)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    Console(soft_wrap=True).print(table)


def notify_daemon(cmd: str = "reload") -> None:
    """Tell a running daemon that tasks changed (nothing happens when none runs)."""
    from ..net.control import call

    try:
        call(cli_env().layout.root / "daemon.json", cmd, timeout=30)
    except Exception:  # no daemon, or it is busy: it will see the change on its next start or rescan
        pass


def warn(message: str) -> None:
    """One warning line on stderr."""
    click.echo(f"warning: {message}", err=True)
