"""Open the SQLite store at ``ECOSYS_HOME/ecosys.db``: create it on first use, migrate it in order.

Migrations are an ordered list of functions; ``settings.schema_version`` says how many ran. A database
written by a newer Ecosys is refused rather than guessed at.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import StoreError
from .tables import Base, Setting


def _v1_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)


# Append only: each function brings the schema from version i to i+1.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial]
SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """A handle on one SQLite store; ``session()`` gives a transaction that commits on success."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.generation = 0  # bumped when tasks or links change, so in-process caches know to reload
        self._local = threading.local()

    def touch(self) -> None:
        """Note that tasks, devices or their links changed. Inside a session the bump waits for the commit,
        so no other thread can cache what it reads before the change is visible."""
        if getattr(self._local, "depth", 0):
            self._local.touched = True
        else:
            self.generation += 1

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session in a transaction: committed when the block ends, rolled back on error."""
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        try:
            with self._sessions.begin() as session:
                yield session
        finally:
            local.depth -= 1
            if not local.depth and getattr(local, "touched", False):
                local.touched = False
                self.generation += 1

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()


def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    # WAL lets the daemon write while the CLI reads; foreign keys make cascades real.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def schema_version(conn: Connection) -> int:
    """Return the schema version recorded in ``conn``'s database (0 for an empty database)."""
    has_settings = conn.execute(
        text("SELECT 1 FROM sqlite_master WHERE type='table' AND name='settings'")
    ).first()
    if not has_settings:
        return 0
    row = conn.execute(select(Setting.value).where(Setting.key == "schema_version")).first()
    return int(row[0]) if row else 0


def open_store(path: Path) -> Store:
    """Open (creating and migrating as needed) the store at ``path``; raise StoreError if it cannot be used."""
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{path}", future=True)
    event.listen(engine, "connect", _on_connect)
    try:
        with engine.begin() as conn:
            current = schema_version(conn)
            if current > SCHEMA_VERSION:
                raise StoreError(
                    f"{path} was written by a newer Ecosys (schema {current}, this one knows {SCHEMA_VERSION})"
                )
            for version in range(current, SCHEMA_VERSION):
                MIGRATIONS[version](conn)
            if current != SCHEMA_VERSION:
                conn.execute(
                    text("INSERT OR REPLACE INTO settings(key, value) VALUES ('schema_version', :v)"),
                    {"v": str(SCHEMA_VERSION)},
                )
    except (OperationalError, DatabaseError) as exc:
        engine.dispose()
        raise StoreError(f"cannot open the store {path}: {exc.orig}") from None
    except StoreError:
        engine.dispose()
        raise
    return Store(path, engine)
