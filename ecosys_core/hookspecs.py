"""Every hook Ecosys calls. Builtins implement them in ``ecosys_core.defaults``; so may anyone else.

Plugins mark implementations with ``ecosys_core.hookspecs.hookimpl``. Each docstring says when the hook is
called, what it gets, what it returns and whether the first non-None result wins. ``docs/plugin_hooks.md``
repeats each signature (a test keeps the two in step).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click
import pluggy

from .types import Placeholder, TaskInfo, TaskLayout, TaskOffer

if TYPE_CHECKING:  # pragma: no cover - only for annotations
    from .daemon_services import DaemonCommand, DaemonServices
    from .grapins import AppRegistry, GrapinRegistry

hookspec = pluggy.HookspecMarker("ecosys")
hookimpl = pluggy.HookimplMarker("ecosys")


@hookspec
def register_placeholders(register: Callable[[Placeholder], None]) -> None:
    """Register path placeholders (``%name%``) by calling ``register(Placeholder(...))``.

    Called once when the plugin manager's placeholder table is first built, before any grapin is read,
    because grapin validation rejects unknown placeholders. A later registration of the same name wins.
    """


@hookspec
def register_grapins(registry: GrapinRegistry) -> None:
    """Add grapins with ``registry.add(grapin, source)``; report broken ones with ``registry.add_error(err)``.

    Called each time the grapin catalogue is built. ``registry.known_placeholders`` lists the placeholder
    names a grapin may use. A grapin added again under the same name replaces the earlier one.
    """


@hookspec
def register_apps(registry: AppRegistry) -> None:
    """Add installed tout-en-un apps with ``registry.add(app, root)``; broken ones with ``registry.add_error``.

    Called each time the app catalogue is built. ``root`` is the app's installation folder.
    """


@hookspec(firstresult=True)
def install_artifact(artifact: Path, artifact_type: str, destination: Path) -> list[str] | None:
    """Install the downloaded, already verified ``artifact`` of ``artifact_type`` into ``destination``.

    Called by the Magasin installer once per artifact. ``artifact_type`` is the index's type name
    (``zip``, ``tar.gz``, ``executable``, or one a plugin adds). Return the ``/``-separated paths created
    under ``destination`` (uninstall removes exactly these), or None when the type is not yours.
    First non-None result wins. Raise an EcosysError to refuse the artifact (it must leave nothing behind).
    """


@hookspec(firstresult=True)
def choose_link_path(offer: TaskOffer) -> Path | None:
    """Say where a sync task offered by a linked device goes on this machine, without asking the user.

    Called when a task link request arrives, before the user is asked (CHOOSELINKPATH). Return a folder
    (grapin tasks: the grapin's resolved path; app tasks: the installed app's data folder), or None to let
    the next plugin or finally the user decide. First non-None result wins.
    """


@hookspec(firstresult=True)
def task_layout(offer: TaskOffer) -> TaskLayout | None:
    """Say which places an app task offered by a linked device syncs here, when they are not one folder.

    Called before ``choose_link_path`` for grapin and app tasks. Return a :class:`TaskLayout` (several
    places, or one folder with ignore patterns), or None to fall back to ``choose_link_path``. The
    builtin plugin answers from this machine's grapin of the same name. First non-None result wins.
    """


@hookspec
def device_linked(device_id: str, name: str) -> None:
    """Called after a device was linked (pinned) on this machine. ``device_id`` is 64 hex digits."""


@hookspec
def device_unlinked(device_id: str) -> None:
    """Called after a device was unlinked on this machine (its task links and pending patches dropped)."""


@hookspec
def task_linked(task: TaskInfo, device_id: str) -> None:
    """Called after sync task ``task`` (folder, grapin or app) was linked with device ``device_id``."""


@hookspec
def change_about_to_send(task: TaskInfo, path: str, deleted: bool) -> bool | None:
    """Called before a local change of ``path`` (``/``-separated, relative to the task root) is sent.

    Return False to keep this change on this device (it is neither sent nor queued); None or True let it
    go. All results are collected: any False vetoes.
    """


@hookspec
def change_applied(task: TaskInfo, path: str, deleted: bool) -> None:
    """Called after a remote change of ``path`` was written (or deleted) atomically and indexed."""


@hookspec
def change_conflicted(task: TaskInfo, path: str, conflict_path: str) -> None:
    """Called after concurrent edits of ``path`` were resolved: the losing version is now ``conflict_path``."""


@hookspec
def register_schemas(register: Callable[[str, dict], None]) -> None:
    """Publish JSON Schemas beside Ecosys' own with ``register(filename, schema)``.

    Called by ``ecosys schemas export`` (and the test that keeps ``schemas/`` current). All results.
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add click commands or groups to the ``ecosys`` command line. Called once when the CLI starts."""


@hookspec
def register_daemon_commands(register: Callable[[str, DaemonCommand], None], daemon: DaemonServices) -> None:
    """Add commands to the running daemon: ``register(name, command)``, where ``name`` is
    ``"plugin.verb"`` (a dot, so it never shadows a builtin command) and ``command(args)`` is a coroutine
    function returning plain data or raising EcosysError. They are reached through the control channel and
    the dashboard's API (``POST /api/v1/commands/NAME``); a command called ``"plugin.jobs"`` is also
    pushed to the dashboard as a live event. Called once when the daemon starts. All results."""
