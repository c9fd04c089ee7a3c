"""Whether an app whose data a task syncs is running here: one of its processes runs, or one of its lock
files is there. While it runs, its files may be half-written at any moment and it would not see a file
replaced under it, so the task's incoming changes wait and its local changes are taken once it stops.
"""

from __future__ import annotations

import glob
import os
import sys
import time
from typing import Callable

from ..types import TaskInfo
from .places import Places

CHECK_EVERY = 1.0  # seconds a verdict is kept: every received file asks


def process_names() -> set[str]:
    """The names of the processes running here (lower case; ``.exe`` kept): ``/proc`` on Linux, psutil
    elsewhere when it is installed; an empty set when neither can tell (lock files still can)."""
    names: set[str] = set()
    if sys.platform.startswith("linux") and os.path.isdir("/proc"):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/comm", "rb") as fh:
                    names.add(fh.read().decode("utf-8", "replace").strip().lower())
                target = os.readlink(f"/proc/{pid}/exe")
                names.add(os.path.basename(target).lower())
            except OSError:  # gone meanwhile, or not ours to look at (comm was still read)
                continue
        return names
    try:
        import psutil  # type: ignore[import-not-found]
    except ImportError:
        return names
    for proc in psutil.process_iter(["name"]):
        if proc.info.get("name"):
            names.add(proc.info["name"].lower())
    return names


def lock_present(info: TaskInfo, patterns: tuple[str, ...]) -> str | None:
    """The first of ``patterns`` (relative to each folder of the task) that names something present,
    a dangling link included (Firefox's ``lock``), or None."""
    places = Places.of(info)
    folders = [p.path for p in places.parts.values() if not p.file] if places.several else [info.root]
    for folder in folders:
        for pattern in patterns:
            if glob.has_magic(pattern):
                if glob.glob(os.path.join(glob.escape(str(folder)), pattern), include_hidden=True):
                    return pattern
            elif os.path.lexists(os.path.join(folder, *pattern.split("/"))):
                return pattern
    return None


class RunningApps:
    """Answers "does this task's app run here?" for every message and scan, from a verdict kept
    :data:`CHECK_EVERY` seconds (a walk of ``/proc`` costs milliseconds)."""

    def __init__(self, processes: Callable[[], set[str]] = process_names, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self._processes = processes
        self._clock = clock
        self._names: tuple[float, set[str]] | None = None
        self._verdicts: dict[str, tuple[float, str | None]] = {}

    def reason(self, info: TaskInfo) -> str | None:
        """"<app> is running" (and what shows it) while the task's app runs here, else None."""
        if not info.lock_files and not info.process_names:
            return None
        now = self._clock()
        kept = self._verdicts.get(info.secure_id)
        if kept is not None and now - kept[0] < CHECK_EVERY:
            return kept[1]
        app = info.source or info.name
        verdict = None
        lock = lock_present(info, info.lock_files) if info.lock_files else None
        if lock is not None:
            verdict = f"{app} is running ({lock} is there)"
        elif info.process_names:
            running = self._running_names(now)
            found = next((n for n in info.process_names if n.lower() in running), None)
            if found is not None:
                verdict = f"{app} is running (process {found})"
        self._verdicts[info.secure_id] = (now, verdict)
        return verdict

    def _running_names(self, now: float) -> set[str]:
        if self._names is None or now - self._names[0] >= CHECK_EVERY:
            self._names = (now, self._processes())
        return self._names[1]

    def forget(self) -> None:
        """Look again at the next question (a test, or a task just told its app stopped)."""
        self._verdicts.clear()
        self._names = None
