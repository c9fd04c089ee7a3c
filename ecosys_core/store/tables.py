"""SQLAlchemy 2 tables of the store: devices, sync tasks, their links, the file index and pending events.

Names follow the seed: ``sync_tasks.secure_id``, ``task_devices.receiving_update`` (the seed's
linked_devices), ``pending_events`` (the seed's "retard") and their ``devices_to_patch``.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    """Timezone-aware now in UTC; every timestamp in the store is UTC."""
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    """Declarative base of every table."""


class Setting(Base):
    """Small key/value facts about this installation (device name, schema version…)."""

    __tablename__ = "settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String)


class Device(Base):
    """A device seen or linked. ``device_id`` is the 256-bit SHA-256 of its certificate, as 64 hex digits."""

    __tablename__ = "devices"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String, default="")
    last_address: Mapped[str | None] = mapped_column(String, nullable=True)
    is_connected: Mapped[bool] = mapped_column(Boolean, default=False)
    last_seen: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    linked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    tasks: Mapped[list[TaskDevice]] = relationship(back_populates="device", cascade="all, delete-orphan", passive_deletes=True)


class SyncTask(Base):
    """A sync task: one folder kept identical on every linked device, shared under its ``secure_id``."""

    __tablename__ = "sync_tasks"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    secure_id: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    root: Mapped[str] = mapped_column(String)
    kind: Mapped[str] = mapped_column(String(16))  # TaskKind value
    source: Mapped[str | None] = mapped_column(String, nullable=True)  # grapin or app name
    backup_mode: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # JSON {"parts": [{"name", "path", "file"}], "patterns": [...]} for a task of several places or made
    # with patterns (schema 3); NULL for a plain folder
    layout: Mapped[str | None] = mapped_column(Text, nullable=True)

    devices: Mapped[list[TaskDevice]] = relationship(back_populates="task", cascade="all, delete-orphan", passive_deletes=True)
    files: Mapped[list[FileEntry]] = relationship(back_populates="task", cascade="all, delete-orphan", passive_deletes=True)


class TaskDevice(Base):
    """A sync task linked with a device (the seed's linked_devices), with the seed's ``receiving_update``."""

    __tablename__ = "task_devices"
    task_id: Mapped[int] = mapped_column(ForeignKey("sync_tasks.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True)
    receiving_update: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    task: Mapped[SyncTask] = relationship(back_populates="devices")
    device: Mapped[Device] = relationship(back_populates="tasks")


class TaskMember(Base):
    """One device's place in a task's member list (docs/sync.md, "Members"): the list travels with the
    task, so every member knows every other. ``seq`` orders the records about one device: a higher one
    wins, and at equal ``seq`` a removal wins, so a removal is never undone by an older list; only a new
    share (``seq + 1``) brings a removed device back. ``device_id`` and ``added_by`` are "" for this
    device itself. ``confirmed``: the device showed it holds the task (it sent its list, or accepted
    our share); nothing is sent to a member before that. Local only, never on the wire."""

    __tablename__ = "task_members"
    task_id: Mapped[int] = mapped_column(ForeignKey("sync_tasks.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, default=0)
    removed: Mapped[bool] = mapped_column(Boolean, default=False)
    added_by: Mapped[str] = mapped_column(String(64), default="")  # who wrote this record
    changed_at: Mapped[int] = mapped_column(Integer, default=0)  # Unix time in ms, by the writer's clock
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)


class FileEntry(Base):
    """One file of a task's index: version vector, content hash, size, mtime and the tombstone flag."""

    __tablename__ = "file_entries"
    __table_args__ = (UniqueConstraint("task_id", "path"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("sync_tasks.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String)  # '/'-separated, relative to the task root
    version: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    mtime_ns: Mapped[int] = mapped_column(Integer, default=0)  # as seen on this disk: change detection
    modified_ns: Mapped[int] = mapped_column(Integer, default=0)  # the origin's mtime: conflict rule
    modified_by: Mapped[str] = mapped_column(String(16), default="")  # short id of the last modifier
    deleted: Mapped[bool] = mapped_column(Boolean, default=False)

    task: Mapped[SyncTask] = relationship(back_populates="files")


class PendingEvent(Base):
    """An event kept for devices not reached yet (the seed's "retard"); gone when no device is left to patch."""

    __tablename__ = "pending_events"
    __table_args__ = (UniqueConstraint("task_id", "path", "flag"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("sync_tasks.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String)
    flag: Mapped[str] = mapped_column(String(32))
    version: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    header: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    payload: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    targets: Mapped[list[PendingTarget]] = relationship(back_populates="event", cascade="all, delete-orphan", passive_deletes=True)

    @property
    def devices_to_patch(self) -> list[str]:
        """The device ids (hex) this event still has to reach."""
        return sorted(t.device_id for t in self.targets)


class PendingTarget(Base):
    """One device in an event's ``devices_to_patch``."""

    __tablename__ = "pending_targets"
    event_id: Mapped[int] = mapped_column(ForeignKey("pending_events.id", ondelete="CASCADE"), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)

    event: Mapped[PendingEvent] = relationship(back_populates="targets")
