"""Walk a task root and tell what changed against the index, hashing only files whose size or mtime moved.

Knows nothing of the database: it is given the current entries and returns observations.
"""

from __future__ import annotations

import os
import stat as stat_mod
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Mapping

from ..store.index import FileStat
from .chunking import FileDigest, digest_file
from .delta import BSDIFF_MAX
from .fsio import is_temp_name

IGNORED_NAMES = frozenset({".ecosys", ".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass
class Observation:
    """A file whose content is new (``digest`` set) or only whose mtime moved (``digest`` None)."""

    path: str
    size: int
    mtime_ns: int
    digest: FileDigest | None


@dataclass
class ScanResult:
    """What one scan saw."""

    changed: list[Observation] = field(default_factory=list)
    touched: list[Observation] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale_temp: list[Path] = field(default_factory=list)
    files_seen: int = 0
    bytes_hashed: int = 0


def _ignored(name: str) -> bool:
    return name in IGNORED_NAMES or is_temp_name(name)


def walk_files(root: Path, temp_files: list[Path] | None = None) -> Iterator[tuple[str, os.stat_result]]:
    """Yield ``(relative '/' path, lstat)`` of every regular file under ``root``; links are not followed.
    Our own temporary files are skipped (and listed into ``temp_files`` when given)."""
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if _ignored(entry.name):
                if temp_files is not None and is_temp_name(entry.name):
                    temp_files.append(Path(entry.path))
                continue
            rel = prefix + entry.name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat_mod.S_ISDIR(st.st_mode):
                stack.append((Path(entry.path), rel + "/"))
            elif stat_mod.S_ISREG(st.st_mode):
                yield rel, st


# A file modified within this many ns of a scan may change again without its size or mtime moving
# (timestamp granularity), like git's "racily clean" entries: such files are hashed again.
RACY_NS = 2_000_000_000


def _observe(root: Path, rel: str, st: os.stat_result, known: FileStat | None, result: ScanResult) -> None:
    if (known is not None and not known.deleted and known.size == st.st_size and known.mtime_ns == st.st_mtime_ns
            and time.time_ns() - st.st_mtime_ns > RACY_NS):
        return
    try:
        digest = digest_file(root.joinpath(*rel.split("/")), with_signature=st.st_size > BSDIFF_MAX)
    except OSError:
        return  # vanished or unreadable right now; the next scan will see it
    result.bytes_hashed += digest.size
    if known is not None and not known.deleted and known.hash == digest.hash:
        result.touched.append(Observation(rel, digest.size, st.st_mtime_ns, None))
    else:
        result.changed.append(Observation(rel, digest.size, st.st_mtime_ns, digest))


def scan_tree(root: Path, known: Mapping[str, FileStat]) -> ScanResult:
    """Compare the whole tree under ``root`` with ``known``."""
    result = ScanResult()
    seen = set()
    for rel, st in walk_files(root, result.stale_temp):
        seen.add(rel)
        result.files_seen += 1
        _observe(root, rel, st, known.get(rel), result)
    result.missing = sorted(p for p, e in known.items() if not e.deleted and p not in seen)
    return result


def scan_paths(root: Path, known: Mapping[str, FileStat], paths: Iterable[str]) -> ScanResult:
    """Compare only ``paths`` (relative, '/'-separated) with ``known``."""
    result = ScanResult()
    for rel in sorted(set(paths)):
        if any(_ignored(part) for part in rel.split("/")):
            continue
        try:
            st = os.lstat(root.joinpath(*rel.split("/")))
        except OSError:
            st = None
        if st is None or not stat_mod.S_ISREG(st.st_mode):
            entry = known.get(rel)
            if entry is not None and not entry.deleted and st is None:
                result.missing.append(rel)
            continue
        result.files_seen += 1
        _observe(root, rel, st, known.get(rel), result)
    return result
