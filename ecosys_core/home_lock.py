"""One daemon per ECOSYS_HOME: an OS lock on ``ECOSYS_HOME/daemon.lock``, held for the daemon's life and
released by the OS when the process dies (no stale lock after a crash). The file also says who holds it
(pid and listening port), so a second ``ecosys up`` can name the running daemon."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO

from .errors import EcosysError

LOCK_NAME = "daemon.lock"


class DaemonRunning(EcosysError):
    """Another daemon already runs for this ECOSYS_HOME."""


def _try_lock(fh: IO[str]) -> bool:
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        import msvcrt

        try:
            msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    import fcntl

    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


class HomeLock:
    """The lock of one home; :meth:`acquire` raises DaemonRunning when another process holds it."""

    def __init__(self, home: Path) -> None:
        self.path = home / LOCK_NAME
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        """Take the lock (DaemonRunning, naming the holder's pid and port, when it is taken)."""
        fh = open(self.path, "a+", encoding="utf-8")
        if not _try_lock(fh):
            fh.seek(0)
            holder = _holder(fh.read())
            fh.close()
            raise DaemonRunning(f"an Ecosys daemon already runs for {self.path.parent}{holder}; "
                                "stop it first ('ecosys stop' or Ctrl-C where it runs)")
        self._fh = fh
        self.record(None)

    def record(self, port: int | None) -> None:
        """Write who holds the lock (this pid, and the sync port once listening)."""
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write(json.dumps({"pid": os.getpid(), "port": port}))
        self._fh.flush()

    def release(self) -> None:
        """Let another daemon start (also done by the OS when this process ends)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
        port = f", port {info['port']}" if info.get("port") else ""
        return f" (pid {int(info['pid'])}{port})"
    except (ValueError, KeyError, TypeError):
        return ""
