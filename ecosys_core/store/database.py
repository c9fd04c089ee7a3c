"""Open the SQLite store at ``ECOSYS_HOME/ecosys.db``: create it on first use, migrate it in order.

Migrations are an ordered list of functions; ``settings.schema_version`` says how many ran. A database
written by a newer Ecosys is refused rather than guessed at.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import Connection, Engine, create_engine, event, select, text
from sqlalchemy.exc import DatabaseError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from ..errors import StoreError
from .tables import Base, Setting


def _v1_initial(conn: Connection) -> None:
    Base.metadata.create_all(conn)


def _v2_task_members(conn: Connection) -> None:
    """Member lists (stop 22): every existing task link becomes a confirmed member added here."""
    from .tables import TaskMember

    TaskMember.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    conn.execute(text("INSERT OR IGNORE INTO task_members (task_id, device_id, seq, removed, added_by, changed_at, "
                      "confirmed) SELECT td.task_id, d.device_id, 0, 0, '', 0, 1 FROM task_devices td "
                      "JOIN devices d ON d.id = td.device_id"))


def _v3_task_layout(conn: Connection) -> None:
    """Tasks of several places and tasks made with patterns (stop 23): a ``layout`` column, NULL for the
    folder tasks there were."""
    columns = {row[1] for row in conn.execute(text("PRAGMA table_info(sync_tasks)"))}
    if "layout" not in columns:
        conn.execute(text("ALTER TABLE sync_tasks ADD COLUMN layout TEXT"))


# Append only: each function brings the schema from version i to i+1.
MIGRATIONS: list[Callable[[Connection], None]] = [_v1_initial, _v2_task_members, _v3_task_layout]
SCHEMA_VERSION = len(MIGRATIONS)


class Store:
    """A handle on one SQLite store; ``session()`` gives a transaction that commits on success."""

    def __init__(self, path: Path, engine: Engine) -> None:
        self.path = path
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self.generation = 0  # bumped when tasks or links change, so in-process caches know to reload
        self._local = threading.local()

    @property
    def home(self) -> Path:
        """The ECOSYS_HOME this store lives in (its database is always ``ECOSYS_HOME/ecosys.db``)."""
        return self.path.parent

    def touch(self) -> None:
        """Note that tasks, devices or their links changed. Inside a session the bump waits for the commit,
        so no other thread can cache what it reads before the change is visible."""
        if getattr(self._local, "depth", 0):
            self._local.touched = True
        else:
            self.generation += 1

    @contextmanager
    def session(self, *, own: bool = False) -> Iterator[Session]:
        """Yield a session in a transaction: committed when the block ends, rolled back on error.

        Inside :meth:`batch` (same thread) the block is a savepoint of the batch's transaction instead:
        undone alone on error, and committed with the batch, so it also sees the batch's writes before
        they are committed. ``own=True`` gives a transaction of its own all the same: for what is cached
        beyond the batch, which must hold only what is committed."""
        local = self._local
        local.depth = getattr(local, "depth", 0) + 1
        shared = None if own else getattr(local, "shared", None)
        try:
            if shared is not None:
                with _savepoint(*shared, local.depth):
                    yield shared[0]
                return
            with self._sessions.begin() as session:
                yield session
        finally:
            local.depth -= 1
            if not local.depth and getattr(local, "touched", False):
                local.touched = False
                self.generation += 1

    @contextmanager
    def reading(self) -> Iterator[Session]:
        """Yield a session to read in, for a block that writes nothing: inside :meth:`batch` (same thread)
        the batch's own session as it is, seeing the batch's writes (a savepoint would have nothing to
        undo, and cost two statements and a flush: a received small file reads its entry so), else a
        transaction of its own, as :meth:`session`."""
        shared = getattr(self._local, "shared", None)
        if shared is not None:
            yield shared[0]
            return
        with self.session() as session:
            yield session

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Within the block, this thread's :meth:`session` blocks share one transaction, each being a
        savepoint in it, and the whole is committed once when the block ends.

        Each block keeps its own all-or-nothing effect, as with separate transactions, at a fraction of the
        cost (a transaction costs ~0.1 ms; a received batch of small files opens several per file). What
        the batch writes is visible to other connections, and durable, only when the block ends: callers
        report nothing done to anyone before that. Other writers wait meanwhile (the busy timeout), so a
        batch must never wait on another thread that may itself be writing.
        """
        if getattr(self._local, "shared", None) is not None:
            yield
            return
        with self.session() as session:
            raw = session.connection().connection.driver_connection
            if not raw.in_transaction:
                # IMMEDIATE: the write lock is taken now, so the batch reads the latest state and can always
                # write. A deferred one could read an older snapshot and then fail to write (SQLITE_BUSY,
                # at once) because another connection committed meanwhile. Also, a savepoint opened outside
                # a transaction would start one, and releasing it would commit.
                raw.execute("BEGIN IMMEDIATE")
            self._local.shared = (session, raw)
            try:
                yield
            finally:
                self._local.shared = None

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()


@contextmanager
def _savepoint(session: Session, raw: Any, depth: int) -> Iterator[None]:
    name = f"ecosys_{depth}"
    raw.execute(f"SAVEPOINT {name}")
    try:
        yield
        session.flush()  # ORM changes belong to this savepoint, not to whatever runs after it
    except BaseException:
        raw.execute(f"ROLLBACK TO {name}")
        raw.execute(f"RELEASE {name}")
        session.expire_all()  # what the ORM loaded inside may no longer be true
        raise
    raw.execute(f"RELEASE {name}")


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
