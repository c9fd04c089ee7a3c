"""Small key/value settings kept in the store (device name and the like)."""

from __future__ import annotations

import socket

from .database import Store
from .tables import Setting


DEPARTURES = "departures"  # secure_id → {"members": [...], "to": [device ids not told yet]}: tasks left here


def get_setting(store: Store, key: str, default: str | None = None) -> str | None:
    """Return the setting ``key`` or ``default``."""
    with store.session() as session:
        row = session.get(Setting, key)
        return row.value if row else default


def set_setting(store: Store, key: str, value: str) -> None:
    """Set the setting ``key`` to ``value``."""
    with store.session() as session:
        session.merge(Setting(key=key, value=value))


def device_name(store: Store) -> str:
    """This device's name: the one given at ``ecosys init``, else the machine's host name."""
    return get_setting(store, "device_name") or socket.gethostname()
