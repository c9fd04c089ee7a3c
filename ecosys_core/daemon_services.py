"""What a plugin's daemon commands may use of the running daemon (hook ``register_daemon_commands``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from .plugins import EcosysPlugins
    from .prompts import Prompts
    from .settings import HomeLayout
    from .store import Store

DaemonCommand = Callable[[dict[str, Any]], Awaitable[Any]]


@dataclass(frozen=True)
class DaemonServices:
    """The running daemon's parts a plugin command works with.

    ``run_blocking(fn, *args)`` runs blocking work in the daemon's worker threads (never block the event
    loop); ``call(name, args)`` runs another daemon command (``reload`` after adding a task, say)."""

    home: "HomeLayout"
    store: "Store"
    plugins: "EcosysPlugins"
    prompts: "Prompts"
    run_blocking: Callable[..., Awaitable[Any]]
    call: Callable[[str, dict[str, Any]], Awaitable[Any]]
