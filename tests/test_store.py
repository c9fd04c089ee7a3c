"""The SQLite store: created on first use, versioned, migrated in order, and the task API over it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import inspect as sa_inspect, select

from ecosys_core.errors import AlreadyExists, NotFound, StoreError
from ecosys_core.store import SCHEMA_VERSION, open_store
from ecosys_core.store import database
from ecosys_core.store.tables import FileEntry, PendingEvent, PendingTarget, SyncTask
from ecosys_core.store.tasks import add_task, get_task, list_tasks, remove_task
from ecosys_core.types import TaskKind


def test_schema_is_created_on_first_use(tmp_path: Path):
    store = open_store(tmp_path / "home" / "ecosys.db")
    tables = set(sa_inspect(store.engine).get_table_names())
    assert {"devices", "sync_tasks", "task_devices", "file_entries", "pending_events", "pending_targets", "settings"} <= tables
    columns = {c["name"] for c in sa_inspect(store.engine).get_columns("devices")}
    assert {"device_id", "name", "last_address", "is_connected", "last_seen", "linked"} <= columns
    assert "receiving_update" in {c["name"] for c in sa_inspect(store.engine).get_columns("task_devices")}
    with sqlite3.connect(tmp_path / "home" / "ecosys.db") as raw:
        assert raw.execute("select value from settings where key='schema_version'").fetchone() == (str(SCHEMA_VERSION),)
    store.close()


def test_a_newer_database_is_refused(tmp_path: Path):
    open_store(tmp_path / "ecosys.db").close()
    with sqlite3.connect(tmp_path / "ecosys.db") as raw:
        raw.execute("update settings set value='999' where key='schema_version'")
    with pytest.raises(StoreError, match="newer Ecosys"):
        open_store(tmp_path / "ecosys.db")


def test_migrations_run_in_order_from_the_recorded_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    open_store(tmp_path / "ecosys.db").close()
    ran = []

    def next_one(conn):
        ran.append(2)
        conn.exec_driver_sql("ALTER TABLE devices ADD COLUMN note TEXT")

    monkeypatch.setattr(database, "MIGRATIONS", [*database.MIGRATIONS, next_one])
    monkeypatch.setattr(database, "SCHEMA_VERSION", len(database.MIGRATIONS))
    store = database.open_store(tmp_path / "ecosys.db")
    assert ran == [2] and "note" in {c["name"] for c in sa_inspect(store.engine).get_columns("devices")}
    store.close()
    database.open_store(tmp_path / "ecosys.db").close()
    assert ran == [2]  # not run twice


def test_garbage_file_gives_a_clear_error(tmp_path: Path):
    (tmp_path / "ecosys.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(tmp_path / "ecosys.db")


def test_tasks_add_list_get_remove(store, tmp_path: Path):
    photos = tmp_path / "Photos"
    photos.mkdir()
    (photos / "keep.jpg").write_bytes(b"x")
    task = add_task(store, name="Photos", root=photos, kind=TaskKind.FOLDER, backup_mode=True)
    assert len(task.secure_id) == 32 and task.backup_mode and task.created_at.tzinfo
    assert [t.name for t in list_tasks(store)] == ["Photos"]
    assert get_task(store, task.secure_id) == task
    remove_task(store, "Photos")
    assert list_tasks(store) == [] and (photos / "keep.jpg").exists()


def test_duplicate_name_and_overlapping_roots_are_refused(store, tmp_path: Path):
    files = tmp_path / "files"  # beside the home: a folder holding ECOSYS_HOME is refused for that reason
    (files / "a" / "b").mkdir(parents=True)
    add_task(store, name="A", root=files / "a", kind=TaskKind.FOLDER)
    with pytest.raises(AlreadyExists):
        add_task(store, name="A", root=files, kind=TaskKind.FOLDER)
    with pytest.raises(AlreadyExists, match="overlaps"):
        add_task(store, name="B", root=files / "a" / "b", kind=TaskKind.FOLDER)
    with pytest.raises(AlreadyExists, match="overlaps"):
        add_task(store, name="C", root=files, kind=TaskKind.FOLDER)
    with pytest.raises(NotFound):
        add_task(store, name="D", root=files / "missing", kind=TaskKind.FOLDER)


def test_removing_a_task_cascades_to_index_and_pending_events(store, tmp_path: Path):
    (tmp_path / "files").mkdir()
    task = add_task(store, name="T", root=tmp_path / "files", kind=TaskKind.FOLDER)
    with store.session() as s:
        row = s.scalar(select(SyncTask))
        s.add(FileEntry(task_id=row.id, path="a.txt", version={"AAAA": 1}, content_hash="00", size=1, mtime_ns=1))
        event = PendingEvent(task_id=row.id, path="a.txt", flag="MODIFICATION", version={"AAAA": 1})
        event.targets.append(PendingTarget(device_id="cd" * 32))
        s.add(event)
    with store.session() as s:
        assert s.scalar(select(PendingEvent)).devices_to_patch == ["cd" * 32]
    remove_task(store, task.name)
    with store.session() as s:
        assert s.scalars(select(FileEntry)).all() == [] and s.scalars(select(PendingTarget)).all() == []


def _store_with_task(tmp_path: Path) -> tuple[database.Store, int]:
    """A store under ``tmp_path`` holding one folder task, and that task's row id."""
    store = open_store(tmp_path / "home" / "ecosys.db")
    (tmp_path / "root").mkdir()
    task = add_task(store, name="t", root=tmp_path / "root", kind=TaskKind.FOLDER)
    with store.session() as session:
        return store, session.scalar(select(SyncTask.id).where(SyncTask.secure_id == task.secure_id))


def test_a_batch_commits_once_and_a_failing_block_inside_is_undone_alone(tmp_path: Path):
    from ecosys_core.store.index import Entry, get_entry, put_entry

    store, task_id = _store_with_task(tmp_path)

    def entry(path: str) -> Entry:
        return Entry(path, {"a": 1}, "h", 1, 1, 1, "a", False)

    with store.batch():
        with store.session() as session:
            put_entry(session, task_id, entry("kept"))
        with pytest.raises(RuntimeError):
            with store.session() as session:
                put_entry(session, task_id, entry("undone"))
                raise RuntimeError("this block fails")
        with store.session() as session:
            put_entry(session, task_id, entry("after"))
            assert get_entry(session, task_id, "kept") is not None
        with sqlite3.connect(tmp_path / "home" / "ecosys.db") as other:  # another connection sees nothing yet
            assert other.execute("select count(*) from file_entries").fetchone() == (0,)
    with store.session() as session:
        assert {p for p in ("kept", "undone", "after") if get_entry(session, task_id, p)} == {"kept", "after"}
    store.close()


def test_reading_inside_a_batch_sees_its_writes_without_a_savepoint_and_reads_alone_outside(tmp_path: Path):
    from ecosys_core.store.index import Entry, get_entry, put_entry

    store, task_id = _store_with_task(tmp_path)
    with store.batch():
        with store.session() as session:
            put_entry(session, task_id, Entry("new", {"a": 1}, "h", 1, 1, 1, "a", False))
        statements: list[str] = []
        with store.reading() as session:
            raw = session.connection().connection.driver_connection
            raw.set_trace_callback(statements.append)
            assert get_entry(session, task_id, "new") is not None  # the batch's own write, not committed yet
            raw.set_trace_callback(None)
        assert not any("SAVEPOINT" in s or "RELEASE" in s for s in statements), statements
    with store.reading() as session:
        assert get_entry(session, task_id, "new") is not None
    store.close()


def test_a_version_1_store_gets_member_lists_from_its_task_links(tmp_path: Path):
    """A store written before member lists (schema 1) keeps syncing with the devices it was linked with:
    each task link becomes a confirmed member added here."""
    from ecosys_core.store.devices import task_device_ids
    from ecosys_core.store.members import read_members

    path = tmp_path / "ecosys.db"
    raw = sqlite3.connect(path)
    raw.executescript("""
        CREATE TABLE settings (key VARCHAR(64) PRIMARY KEY, value VARCHAR);
        INSERT INTO settings VALUES ('schema_version', '1');
        CREATE TABLE devices (id INTEGER PRIMARY KEY, device_id VARCHAR(64) UNIQUE, name VARCHAR, last_address VARCHAR,
            is_connected BOOLEAN, last_seen DATETIME, linked BOOLEAN, created_at DATETIME);
        CREATE TABLE sync_tasks (id INTEGER PRIMARY KEY, secure_id VARCHAR(64) UNIQUE, name VARCHAR UNIQUE, root VARCHAR,
            kind VARCHAR(16), source VARCHAR, backup_mode BOOLEAN, created_at DATETIME);
        CREATE TABLE task_devices (task_id INTEGER REFERENCES sync_tasks(id) ON DELETE CASCADE,
            device_id INTEGER REFERENCES devices(id) ON DELETE CASCADE, receiving_update BOOLEAN, linked_at DATETIME,
            PRIMARY KEY (task_id, device_id));
        INSERT INTO devices VALUES (1, '""" + "ab" * 32 + """', 'b', NULL, 0, NULL, 1, '2026-01-01 00:00:00');
        INSERT INTO sync_tasks VALUES (1, '""" + "5e" * 16 + """', 'docs', '/tmp/x', 'folder', NULL, 0, '2026-01-01 00:00:00');
        INSERT INTO task_devices VALUES (1, 1, 0, '2026-01-01 00:00:00');
    """)
    raw.close()
    store = open_store(path)
    with store.session() as session:
        members = read_members(session, 1)
    assert members["ab" * 32].confirmed and not members["ab" * 32].member.removed
    assert task_device_ids(store, "5e" * 16) == ["ab" * 32]
    from ecosys_core.store.tasks import get_task

    task = get_task(store, "docs")  # schema 3 added the layout column: a folder task has none
    assert task.parts == () and task.patterns == () and task.root == Path("/tmp/x")
    store.close()
