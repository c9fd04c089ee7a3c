"""Small key/value settings kept in the store (device name and the like)."""

from __future__ import annotations

from .database import Store
from .tables import Setting


def get_setting(store: Store, key: str, default: str | None = None) -> str | None:
    """Return the setting ``key`` or ``default``."""
    with store.session() as session:
        row = session.get(Setting, key)
        return row.value if row else default


def set_setting(store: Store, key: str, value: str) -> None:
    """Set the setting ``key`` to ``value``."""
    with store.session() as session:
        session.merge(Setting(key=key, value=value))
