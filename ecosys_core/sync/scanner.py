"""Walk a task root and tell what changed against the index, hashing only files whose size or mtime moved.

Knows nothing of the database: it is given the current entries and returns observations.
"""

from __future__ import annotations

import logging
import os
import stat as stat_mod
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

from ..errors import RootUnavailable, UnsafePath
from ..store.index import FileStat
from .chunking import PARALLEL_HASH_MIN, FileDigest, digest_file
from .delta import BSDIFF_MAX
from .fsio import TEMP_PREFIX, is_temp_name

if TYPE_CHECKING:
    from .ignores import TaskIgnores
    from .places import Places

log = logging.getLogger(__name__)
IGNORED_NAMES = frozenset({".ecosys", ".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass
class Observation:
    """A file whose content is new (``digest`` set) or only whose mtime moved (``digest`` None)."""

    path: str
    size: int
    mtime_ns: int
    digest: FileDigest | None
    hashed_at_ns: int = 0  # when the read that hashed it began (0: not hashed)

    def settled(self) -> bool:
        """True when the hash was read late enough after the file's mtime that any later write moves
        the mtime (see :func:`settled_after`)."""
        return settled_after(self.mtime_ns, self.hashed_at_ns)


@dataclass
class ScanResult:
    """What one scan saw."""

    changed: list[Observation] = field(default_factory=list)
    touched: list[Observation] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    stale_temp: list[Path] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    files_seen: int = 0
    bytes_hashed: int = 0
    patient: bool = True  # False: a file being written is left (its next event scans it), not read again
    # large files still being hashed when the rest was done (``defer``): scan these paths again once
    # ``hashing`` is done, and what was read meanwhile is taken from :data:`_HASHED` instead of read again
    deferred: list[str] = field(default_factory=list)
    hashing: list[Future] = field(default_factory=list)
    # smaller files (path, rel, size) past the ``first`` this scan was to record (``defer``): not read
    # yet; read them (:func:`read_ahead`) and scan them next
    postponed: list[tuple[Path, str, int]] = field(default_factory=list)


def _ignored(name: str) -> bool:
    return name in IGNORED_NAMES or is_temp_name(name)


def _native_walk() -> Callable | None:
    """The C walk (``_walk.c``) where it was built for this platform; None to walk in Python.
    ``ECOSYS_PURE_WALK=1`` forces the Python walk (tests compare the two)."""
    if os.environ.get("ECOSYS_PURE_WALK") == "1":
        return None
    try:
        from ._walk import walk  # type: ignore[import-not-found]
    except ImportError:
        return None
    return walk


_NATIVE_WALK = _native_walk()
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_SCANDIR_FD = os.scandir in os.supports_fd


@dataclass
class TreeWalk:
    """What one walk of a task root found."""

    files: dict[str, tuple[int, int]]  # relative '/' path -> (size, mtime_ns), regular files only
    temp_files: list[Path] = field(default_factory=list)  # our own temporary files (crash leftovers)
    unreadable: list[str] = field(default_factory=list)  # folders that could not be listed, as "a/b/"
    racy: list[str] = field(default_factory=list)  # files modified after ``racy_after``


def walk_tree(root: Path, racy_after: int | None = None) -> TreeWalk:
    """Every regular file under ``root`` with its size and mtime; links below the root are not followed
    (the root itself may be one), our temporary files and IGNORED_NAMES are left out. Files modified
    after ``racy_after`` (ns) are also listed in ``racy``. Raises RootUnavailable when ``root`` itself
    cannot be listed.

    Where the C walk is built it does it all in one call, without the GIL while it lists; the Python
    walk lists each folder through an open descriptor where the OS allows it. Either way each file costs
    one short ``fstatat``: an unchanged rescan is bound by that system call.
    """
    if _NATIVE_WALK is not None:
        try:
            files, temps, hidden, racy = _NATIVE_WALK(root, tuple(IGNORED_NAMES), TEMP_PREFIX,
                                                      (1 << 63) - 1 if racy_after is None else racy_after)
        except OSError as exc:
            raise RootUnavailable(f"cannot read the folder {root}: {exc.strerror or exc}") from None
        return TreeWalk(files, [Path(root, *rel.split("/")) for rel in temps], hidden, racy)
    walk = TreeWalk({})
    files = walk.files
    stack = [(os.fspath(root), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            fd = os.open(folder, _DIR_FLAGS if prefix else _DIR_FLAGS & ~_NOFOLLOW) if _SCANDIR_FD else -1
        except OSError as exc:
            _unlistable(root, prefix, exc, walk.unreadable)
            continue
        try:
            with os.scandir(fd if fd >= 0 else folder) as entries:
                for entry in entries:
                    name = entry.name
                    if name in IGNORED_NAMES or name.startswith(TEMP_PREFIX):
                        if name.startswith(TEMP_PREFIX):
                            walk.temp_files.append(Path(folder, name))
                        continue
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    if stat_mod.S_ISREG(st.st_mode):
                        files[prefix + name] = (st.st_size, st.st_mtime_ns)
                    elif stat_mod.S_ISDIR(st.st_mode):
                        stack.append((os.path.join(folder, name), prefix + name + "/"))
        except OSError as exc:
            _unlistable(root, prefix, exc, walk.unreadable)
        finally:
            if fd >= 0:
                os.close(fd)
    if racy_after is not None:
        walk.racy = [path for path, stamp in files.items() if stamp[1] > racy_after]
    return walk


def _unlistable(root: Path, prefix: str, exc: OSError, unreadable: list[str]) -> None:
    if not prefix:
        raise RootUnavailable(f"cannot read the folder {root}: {exc.strerror or exc}") from None
    unreadable.append(prefix)


# A file modified within this many ns of a scan may change again without its size or mtime moving
# (timestamp granularity), like git's "racily clean" entries: such files are hashed again.
RACY_NS = 2_000_000_000


# The coarsest mtime step of a file system with sub-second timestamps (the kernel's coarse clock, one
# jiffy: 10 ms at worst), with room to spare; whole-second mtimes may come from FAT (2 s steps).
_FINE_STEP_NS = 50_000_000


def settled_after(mtime_ns: int, read_at_ns: int) -> bool:
    """True when content read from ``read_at_ns`` on is what a file of mtime ``mtime_ns`` holds for as
    long as its mtime stays: the read began more than one timestamp step after the mtime, so a later
    write cannot leave the mtime where it was. Such a file needs no racily-clean rehash."""
    step = RACY_NS if mtime_ns % 1_000_000_000 == 0 else _FINE_STEP_NS
    return read_at_ns - mtime_ns > step


# A file whose size or mtime moved while it was read may have been read half written, a state it never
# had (a large file written as a scan started would be sent so, then again whole). A scan a watcher event
# asked for leaves it: the write that moved it ends with an event of its own, which scans it again. Other
# scans (before a send or an apply, a rescan) read it again, at most this many times, this far apart; one
# that never holds still (a log written all the time) keeps its last read, and its next change is seen.
STEADY_TRIES = 4
STEADY_WAIT = 0.05


# What a deferred scan's helper threads read (see ScanResult.deferred), by path, until the scan that
# deferred it asks again: ((inode, ctime_ns) before the read, size, mtime_ns, monotonic time, digest, when
# the read began). Taken only while the file is still that inode, untouched since (any write, rename or
# attribute change moves the ctime), with the size and mtime the read went with; anything older than
# HASHED_FOR is dropped.
_HASHED: dict[str, tuple[tuple[int, int], int, int, float, FileDigest, int]] = {}
HASHED_FOR = 120.0
# Large files a helper is reading ahead now, each with what it sets once done: a second scan meeting one
# (the watcher's, for the files an initial scan is reading) waits for that read instead of making its
# own (a second 128 MiB read and signature, 0.1-0.2 s of CPU, on the bench's sender).
_HASHING: dict[str, threading.Event] = {}


def _read_digest(path: Path, size: int, patient: bool) -> tuple[FileDigest, int] | None:
    """``path``'s digest (a signature too above BSDIFF_MAX) and when the read that made it began; None
    when it cannot be read now, or was being written and ``patient`` is False (see STEADY_TRIES)."""
    tries = STEADY_TRIES if patient else 1
    for attempt in range(tries):
        started = time.time_ns()
        try:
            digest = digest_file(path, with_signature=size > BSDIFF_MAX)
        except OSError:
            return None  # vanished or unreadable right now; the next scan will see it
        if digest.steady or attempt == tries - 1:
            break
        time.sleep(STEADY_WAIT)
    if not digest.steady and not patient:
        return None  # being written while read: left to the event its write ends with
    return digest, started


def _hash_ahead(path: Path, size: int, patient: bool, done: threading.Event) -> None:
    """(In a helper thread.) Read ``path`` for the scan that will ask for it again (:data:`_HASHED`);
    ``done`` is set once it is there (or the read failed)."""
    try:
        _read_ahead(path, size, patient)
    finally:
        if _HASHING.get(os.fspath(path)) is done:
            del _HASHING[os.fspath(path)]
        done.set()


def read_ahead(files: list[tuple[Path, str, int]], patient: bool = True) -> None:
    """Read each of ``files`` (path, rel, size) for the scan that asks for them next, outside its lock
    (the smaller files a scan postponed, see :func:`_observe_all`): that scan then takes each read
    if the file is still what it was (:func:`_hashed_ahead`). A file another scan is reading ahead, or
    has read, is left to that read: a watcher's scan of moved-in folders runs beside the scan of the
    whole tree, and both postpone the same files."""
    _forget_stale_reads()
    for path, _, size in files:
        key = os.fspath(path)
        if key in _HASHING or key in _HASHED:
            continue
        _HASHING[key] = done = threading.Event()
        _hash_ahead(path, size, patient, done)


def _forget_stale_reads() -> None:
    """Drop the reads nobody came back for (their scan failed meanwhile)."""
    now = time.monotonic()
    for key, kept in list(_HASHED.items()):
        if now - kept[3] > HASHED_FOR:
            _HASHED.pop(key, None)


def _read_ahead(path: Path, size: int, patient: bool) -> None:
    try:
        before = _identity(path)
    except OSError:
        return
    read = _read_digest(path, size, patient)
    if read is not None:
        digest, started = read
        _HASHED[os.fspath(path)] = (before, digest.size, digest.mtime_ns, time.monotonic(), digest, started)


def _identity(path: Path) -> tuple[int, int]:
    st = os.lstat(path)
    return st.st_ino, st.st_ctime_ns


def _hashed_ahead(path: Path, size: int, mtime_ns: int) -> tuple[FileDigest, int] | None:
    """What :func:`_hash_ahead` read of ``path`` if the file is still what it was then."""
    kept = _HASHED.pop(os.fspath(path), None)
    if kept is None or (kept[1], kept[2]) != (size, mtime_ns) or time.monotonic() - kept[3] > HASHED_FOR:
        return None
    try:
        if _identity(path) != kept[0]:
            return None
    except OSError:
        return None
    return kept[4], kept[5]


def _unchanged(size: int, mtime_ns: int, known: FileStat | None) -> bool:
    """True when the index's entry vouches for the file as it is: no need to read it."""
    return (known is not None and not known.deleted and known.size == size and known.mtime_ns == mtime_ns
            and (known.settled or time.time_ns() - mtime_ns > RACY_NS))


def _observe(path: Path, rel: str, size: int, mtime_ns: int, known: FileStat | None, result: ScanResult) -> None:
    if _unchanged(size, mtime_ns, known):
        return
    if _HASHING:
        reading = _HASHING.get(os.fspath(path))
        if reading is not None:  # another scan's helper is reading it: take that read, not a second one
            reading.wait(HASHED_FOR)
    read = _hashed_ahead(path, size, mtime_ns) if _HASHED else None
    if read is None:
        read = _read_digest(path, size, result.patient)
        if read is None:
            return
    digest, started = read
    result.bytes_hashed += digest.size
    mtime_ns = digest.mtime_ns or mtime_ns  # the mtime that goes with what was read
    if known is not None and not known.deleted and known.hash == digest.hash:
        result.touched.append(Observation(rel, digest.size, mtime_ns, None, started))
    else:
        result.changed.append(Observation(rel, digest.size, mtime_ns, digest, started))


# Files of PARALLEL_HASH_MIN and more are hashed in helper threads while this one goes through the
# others: BLAKE3, the chunk cuts and the reads run without the GIL, so two large files and a tree of
# small ones use both cores (docs/decisions.md, "Stop 27").
HASH_THREADS = 2
# A scan asked to record only its ``first`` changed files does so when it found at most this many: the
# reads of the others are then made ahead and held (:func:`read_ahead`) a step at a time, which left a
# 100,000-file first scan's daemon at 150 MiB once idle instead of 98 (bench/scale.py); a tree that
# large is read in one pass, as before.
POSTPONE_MAX = 16384


def _observe_all(files: list[tuple[Path, str, int, int, FileStat | None]], result: ScanResult,
                 defer: bool = False, defer_alone: bool = False, first: int | None = None) -> None:
    """:func:`_observe` each of ``files`` (path, rel, size, mtime_ns, known; sorted by rel), the large
    ones in helper threads; what changed is recorded in the order of ``files`` whichever finished first.
    ``defer``: do not wait for the large ones to be read when there are smaller ones to record meanwhile
    (or, with ``defer_alone``, when the caller has recorded others); their paths go to
    ``result.deferred`` and their reads to ``result.hashing``. With ``first`` too (None: no limit), only
    the first ``first`` smaller ones are read (if there are at most ``POSTPONE_MAX``; 0: none of them);
    the others go to ``result.postponed``."""
    large = [f for f in files if f[2] >= PARALLEL_HASH_MIN]
    to_read = [f for f in large if not _unchanged(f[2], f[3], f[4])] if defer else []
    defer_large = bool(to_read) and (defer_alone or len(to_read) < len(files)) and (os.cpu_count() or 1) >= 2
    smaller = [f for f in files if f[2] < PARALLEL_HASH_MIN] if defer and first is not None else []
    postponed = smaller[first:] if smaller and first is not None and first < len(smaller) <= POSTPONE_MAX else []
    if defer_large or postponed:
        result.deferred = [f[1] for f in to_read] if defer_large else []
        result.postponed = [(f[0], f[1], f[2]) for f in postponed]
        later = set(result.deferred).union(f[1] for f in postponed)
        for f in files:
            if f[1] not in later:
                _observe(*f, result)
        if not defer_large:
            return
        _forget_stale_reads()
        pool = ThreadPoolExecutor(min(HASH_THREADS, len(to_read)), thread_name_prefix="ecosys-hash")
        result.hashing = []
        for f in to_read:
            if os.fspath(f[0]) in _HASHING or os.fspath(f[0]) in _HASHED:  # read or being read for another
                continue  # scan (or an earlier pass of this one): the pass that records it takes that read
            _HASHING[os.fspath(f[0])] = done = threading.Event()
            result.hashing.append(pool.submit(_hash_ahead, f[0], f[2], result.patient, done))
        pool.shutdown(wait=False)  # its threads end with their reads
        return
    if not large or (os.cpu_count() or 1) < 2 or len(files) < 2:
        for f in files:
            _observe(*f, result)
        return
    apart = {f[1]: ScanResult(patient=result.patient) for f in large}
    small = ScanResult(patient=result.patient)
    with ThreadPoolExecutor(min(HASH_THREADS, len(large)), thread_name_prefix="ecosys-hash") as pool:
        hashing = [pool.submit(_observe, *f, apart[f[1]]) for f in large]
        for f in files:
            if f[1] not in apart:
                _observe(*f, small)
        for future in hashing:
            future.result()  # an unexpected error is raised here, as it would be without the threads
    order = {f[1]: i for i, f in enumerate(files)}
    parts = (small, *apart.values())
    result.changed += sorted((o for part in parts for o in part.changed), key=lambda o: order[o.path])
    result.touched += sorted((o for part in parts for o in part.touched), key=lambda o: order[o.path])
    result.bytes_hashed += sum(part.bytes_hashed for part in parts)


def _walk_while_loading(places: Places, racy_after: int, load: Callable[[], Mapping[str, tuple[int, int]]]
                        ) -> tuple[TreeWalk, Mapping[str, tuple[int, int]]]:
    """Walk ``places`` in a helper thread while ``load`` runs in this one (it may hold a database session
    that must not change threads); the walk's error, if any, is raised here. The Python walk would only
    fight ``load`` for the GIL, so without the C walk the two run one after the other."""
    if _NATIVE_WALK is None:
        return places.walk(racy_after), load()
    outcome: list = []

    def walk() -> None:
        try:
            outcome.append(places.walk(racy_after))
        except BaseException as exc:  # handed to the caller below
            outcome.append(exc)

    walker = threading.Thread(target=walk, name="ecosys-walk", daemon=True)
    walker.start()
    try:
        indexed = load()
    finally:
        walker.join()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0], indexed


def scan_tree(places: Places, fingerprints: Callable[[], Mapping[str, tuple[int, int]]],
              details: Callable[[], Mapping[str, FileStat]], under: str = "",
              excluded: tuple[str, ...] = (), ignores: TaskIgnores | None = None, patient: bool = True,
              defer: bool = False, first: int | None = None) -> ScanResult:
    """Compare every file of a task's ``places`` (its folder) with the index; with ``under`` (a folder, '/'-separated),
    only that folder's subtree, as a walk of the whole tree would see it. Paths starting with one of
    ``excluded`` (folders as "a/b/") and paths ``ignores`` ignores are neither seen nor missing: they
    are not the task's.

    ``fingerprints`` returns each live indexed path's ``(size, mtime_ns)`` (below ``under`` only, when
    given); it is called in this thread while the tree is walked in another (the C walk and SQLite both
    run without the GIL). ``details`` returns every entry (tombstones included) and is called at most
    once, only when some file differs, so an unchanged tree costs one walk and two set operations.
    ``patient``: see STEADY_TRIES. ``defer`` and ``first``: see :func:`_observe_all`.
    """
    # taken before the walk, so every file written within RACY_NS of its stat counts as racy
    racy_after = time.time_ns() - RACY_NS
    if under:
        walk, indexed = places.walk_under(under, racy_after), fingerprints()
    else:
        walk, indexed = _walk_while_loading(places, racy_after, fingerprints)
    found = _indexable(places.root, walk.files)
    if found is not walk.files:
        walk.racy = [path for path in walk.racy if path in found]
    if excluded:
        found = {path: stamp for path, stamp in found.items() if not path.startswith(excluded)}
        walk.racy = [path for path in walk.racy if not path.startswith(excluded)]
    if ignores is not None:
        indexed = dict(indexed) if not isinstance(indexed, dict) else indexed
        ignores.filter_scan(found, indexed, whole=not under)
        walk.racy = [path for path in walk.racy if path in found]
    result = ScanResult(stale_temp=walk.temp_files, unreadable=walk.unreadable, files_seen=len(found), patient=patient)
    # dict equality and set difference run in C: an unchanged tree costs no Python work per file here
    same = found == indexed
    suspects = set(walk.racy) if same else {path for path, _ in found.items() - indexed.items()}.union(walk.racy)
    if suspects:
        known = details()
        _observe_all([(places.path(rel), rel, *found[rel], known.get(rel)) for rel in sorted(suspects)], result,
                     defer, first=first)
    missing = set() if same else indexed.keys() - found.keys()
    if result.unreadable or excluded:  # not listed is not deleted: those files are kept until they can be read
        hidden = tuple(result.unreadable) + excluded
        missing = {path for path in missing if not path.startswith(hidden)}
    result.missing = sorted(missing)
    return result


def _indexable(root: Path, found: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    """``found`` without the paths the index cannot hold (names that are not valid UTF-8, read with
    surrogate escapes): each is logged and skipped, never fatal to the task. Checked in one go first,
    since they are rare."""
    try:
        "\n".join(found).encode("utf-8")
        return found
    except UnicodeEncodeError:
        pass
    bad = [path for path in found if not indexable_name(path)]
    log.warning("%s: %d file name(s) that are not valid UTF-8 are not synced, such as %r", root, len(bad),
                os.fsencode(bad[0]))
    return {path: stamp for path, stamp in found.items() if indexable_name(path)}


def indexable_name(path: str) -> bool:
    """True when the index can hold ``path`` (valid UTF-8: no surrogate escapes)."""
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def walk_folder(root: Path, under: str, racy_after: int) -> TreeWalk:
    """The part of a whole walk of ``root`` below folder ``under``, paths relative to ``root``.

    A walk of the whole tree follows no link and skips ignored names, so a folder reached through a link,
    an ignored or temporary name, or a file holds nothing; one that cannot be looked at is unreadable
    (its files are kept). Raises RootUnavailable when ``root`` itself cannot be listed.
    """
    if not root.is_dir():
        raise RootUnavailable(f"cannot read the folder {root}: it is missing or not a folder")
    folder = os.fspath(root)
    for part in under.split("/"):
        if _ignored(part) or part in ("", ".", ".."):
            return TreeWalk({})
        folder = os.path.join(folder, part)
        try:
            st = os.lstat(folder)
        except (FileNotFoundError, NotADirectoryError):
            return TreeWalk({})
        except OSError:
            return TreeWalk({}, unreadable=[under + "/"])
        if not stat_mod.S_ISDIR(st.st_mode):
            return TreeWalk({})
    try:
        walk = walk_tree(Path(folder), racy_after)
    except RootUnavailable:  # changed since it was looked at: gone, or no longer listable
        gone = os.path.islink(folder) or not os.path.isdir(folder)
        return TreeWalk({}) if gone else TreeWalk({}, unreadable=[under + "/"])
    prefix = under + "/"
    return TreeWalk({prefix + rel: stamp for rel, stamp in walk.files.items()}, walk.temp_files,
                    [prefix + rel for rel in walk.unreadable], [prefix + rel for rel in walk.racy])


def scan_paths(places: Places, known: Mapping[str, FileStat], paths: Iterable[str],
               excluded: tuple[str, ...] = (), ignores: TaskIgnores | None = None, patient: bool = True,
               defer: bool = False, defer_alone: bool = False, first: int | None = None) -> ScanResult:
    """Compare only ``paths`` (relative, '/'-separated) with ``known``, leaving out those under
    ``excluded`` and those ``ignores`` ignores. Only a path that is not there counts as deleted (not one that cannot be read now);
    raises RootUnavailable without the task's folder. ``patient``: see STEADY_TRIES; ``defer``,
    ``defer_alone`` and ``first``: see :func:`_observe_all`."""
    places.available()
    result = ScanResult(patient=patient)
    files: list[tuple[Path, str, int, int, FileStat | None]] = []
    for rel in sorted(set(paths)):
        if (any(_ignored(part) for part in rel.split("/")) or rel.startswith(excluded) or not indexable_name(rel)
                or (ignores is not None and ignores.ignored(rel))):
            continue
        try:
            path = places.path(rel)
            st = os.lstat(path)
        except UnsafePath:  # not (or no longer) one of the task's places
            continue
        except (FileNotFoundError, NotADirectoryError):
            st = None
        except OSError:
            continue
        if st is None or not stat_mod.S_ISREG(st.st_mode):
            entry = known.get(rel)
            if entry is not None and not entry.deleted and st is None:
                result.missing.append(rel)
            continue
        result.files_seen += 1
        files.append((path, rel, st.st_size, st.st_mtime_ns, known.get(rel)))
    _observe_all(files, result, defer, defer_alone, first)
    return result
