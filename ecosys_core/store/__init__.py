"""The SQLite store: tables, migrations and the small APIs over them."""

from .database import SCHEMA_VERSION, Store, open_store

__all__ = ["SCHEMA_VERSION", "Store", "open_store"]
