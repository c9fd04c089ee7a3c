"""A task's ignore patterns: ``.ecosysignore`` at its root, gitignore-style, with Syncthing's extras.

The file holds one pattern per line, matched by ``pathspec``'s gitignore matcher (the last matching
line wins; ``!`` re-includes). On top of gitignore, as in Syncthing's ``.stignore``:

- ``(?i)`` before a pattern makes it case-insensitive, ``(?d)`` lets Ecosys delete the files it matches
  when they are all that keeps a folder a peer deleted from being removed (``(?d)(?i)`` both);
- ``#include FILE`` reads more patterns from FILE, relative to the including file's folder and inside
  the task (it syncs like any file, so devices can share one list, as Syncthing users do);
- lines starting with ``#`` or ``//`` are comments, blank lines are skipped.

``.ecosysignore`` itself never syncs: each device keeps its own list. Ignored paths are neither sent,
nor deleted, nor overwritten by what peers send. Patterns are read again whenever one of their files
changes, so an edit takes effect at the next scan or message, without a restart.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, MutableMapping, Sequence

from pathspec import GitIgnoreSpec
from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

from ..errors import ConfigError
from ..types import TaskInfo, TaskKind
from .fsio import atomic_writer, commit_temp

log = logging.getLogger(__name__)
IGNORE_FILE = ".ecosysignore"
MAX_INCLUDE_DEPTH = 8
MAX_PATTERNS = 10_000
# Live files of a running app: copying them mid-write is how profiles get corrupted. SQLite journals,
# lock files of Firefox, Chromium/LevelDB and the like. App tasks start with these; '!' undoes one.
APP_DEFAULTS: tuple[str, ...] = (
    "*-wal", "*-shm", "*-journal", "parent.lock", ".parentlock", "lock", "LOCK", "*.lck",
    "SingletonLock", "SingletonCookie", "SingletonSocket",
)


def ignore_defaults(task: TaskInfo) -> tuple[str, ...]:
    """The patterns a task starts with: :data:`APP_DEFAULTS` for app data, then those it was made with
    (a grapin's include and exclude lists), then its app's lock files (never synced: a lock copied to
    another device would make the app look running there)."""
    locks: list[str] = []
    for pattern in task.lock_files:
        if "/" not in pattern.rstrip("/"):
            locks.append(pattern)
        elif task.parts:
            locks += [f"/{part.name}/{pattern.lstrip('/')}" for part in task.parts if not part.file]
        else:
            locks.append("/" + pattern.lstrip("/"))
    return (APP_DEFAULTS if task.kind in (TaskKind.GRAPIN, TaskKind.APP) else ()) + task.patterns + tuple(locks)


_FLAGS_RE = re.compile(r"^(\(\?[id]\))+")


@dataclass(frozen=True)
class IgnoreRule:
    """One pattern line: where it was written, and its Syncthing flags."""

    pattern: str
    source: str
    line: int
    casefold: bool = False
    deletable: bool = False


class IgnoreFileError(ConfigError):
    """An ignore file cannot be used; the message names the file and the line."""


def parse_rules(text: str, source: str, root: Path, folder: Path, depth: int = 0,
                read: list[Path] | None = None) -> list[IgnoreRule]:
    """The rules written in ``text`` (the content of ``source``, a file in ``folder``), includes expanded.

    ``read`` collects every file read, so a change to any of them is noticed. Raises IgnoreFileError
    naming the file and line of a bad pattern, an include outside ``root``, a missing include or a loop.
    """
    rules: list[IgnoreRule] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("//"):
            continue
        if line.startswith("#include"):
            name = line[len("#include"):].strip()
            rules += _include(name, source, number, root, folder, depth, read)
            continue
        if line.startswith("#"):
            continue
        flags = _FLAGS_RE.match(line)
        body = line[flags.end():] if flags else line
        rule = IgnoreRule(body, source, number, casefold="(?i)" in (flags.group(0) if flags else ""),
                          deletable="(?d)" in (flags.group(0) if flags else ""))
        _compile(rule)  # checked now, so the error names the line
        rules.append(rule)
        if len(rules) > MAX_PATTERNS:
            raise IgnoreFileError(source, f"line {number}", f"more than {MAX_PATTERNS} patterns")
    return rules


def _include(name: str, source: str, number: int, root: Path, folder: Path, depth: int,
             read: list[Path] | None) -> list[IgnoreRule]:
    where = f"line {number}"
    if not name:
        raise IgnoreFileError(source, where, "#include needs a file name")
    if depth >= MAX_INCLUDE_DEPTH:
        raise IgnoreFileError(source, where, f"#include nested more than {MAX_INCLUDE_DEPTH} deep (a loop?)")
    target = Path(os.path.normpath(folder / name))
    real_root = os.path.realpath(root)
    if os.path.commonpath([os.path.realpath(target), real_root]) != real_root:
        raise IgnoreFileError(source, where, f"#include {name}: the file must be inside the task's folder")
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IgnoreFileError(source, where, f"#include {name}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise IgnoreFileError(source, where, f"#include {name}: cannot read it ({exc})") from None
    if read is not None:
        read.append(target)
    return parse_rules(text, str(target), root, target.parent, depth + 1, read)


def _compile(rule: IgnoreRule) -> GitIgnoreSpecPattern:
    try:
        pattern = GitIgnoreSpecPattern(rule.pattern)
    except Exception as exc:  # pathspec raises its own error types; each is a bad line to the user
        raise IgnoreFileError(rule.source, f"line {rule.line}", f"bad pattern {rule.pattern!r}: {exc}") from None
    if pattern.regex is not None and rule.casefold:
        pattern.regex = re.compile(pattern.regex.pattern, re.IGNORECASE)
    return pattern


def _spec(rules: Sequence[IgnoreRule]) -> GitIgnoreSpec | None:
    patterns = [p for p in map(_compile, rules) if p.include is not None]
    return GitIgnoreSpec(patterns) if patterns else None


def _stamp(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class TaskIgnores:
    """The ignore patterns of one task root: ``defaults`` first, then the root's ``.ecosysignore``.

    :meth:`refresh` reads the files again when one changed. What a full scan found ignored is
    remembered, so a rescan of an unchanged tree matches nothing again (see :meth:`filter_scan`).
    """

    def __init__(self, root: Path, defaults: Sequence[str] = ()) -> None:
        self.root = root
        self.defaults = tuple(defaults)
        self.generation = 0
        self.error: IgnoreFileError | None = None
        self._stamps: dict[Path, tuple[int, ...] | None] = {}
        self._spec: GitIgnoreSpec | None = None
        self._deletable: GitIgnoreSpec | None = None
        self._rules: list[IgnoreRule] = []
        self._known: set[str] = set()  # paths found ignored under this generation's patterns
        self._primed = False  # a whole scan matched every path under these patterns
        self._loaded = False

    @property
    def rules(self) -> list[IgnoreRule]:
        """The rules in force (defaults, then the file's lines with their includes)."""
        return list(self._rules)

    def refresh(self) -> bool:
        """Read the patterns again if any of their files changed; True when they did (the generation
        moves on). Raises IgnoreFileError while the file is broken: nothing should sync then, as in
        Syncthing, rather than what the user meant to keep out."""
        if self._loaded and all(_stamp(path) == stamp for path, stamp in self._stamps.items()):
            if self.error is not None:
                raise self.error
            return False
        self._loaded = True
        main = self.root / IGNORE_FILE
        read = [main]
        try:
            rules = parse_rules("\n".join(self.defaults), "default patterns", self.root, self.root)
            try:
                text = main.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            except (OSError, UnicodeDecodeError) as exc:
                raise IgnoreFileError(str(main), None, f"cannot read it ({exc})") from None
            rules += parse_rules(text, str(main), self.root, self.root, read=read)
            error = None
        except IgnoreFileError as exc:
            rules, error = [], exc
        self._stamps = {path: _stamp(path) for path in read}
        self.generation += 1
        self._known.clear()
        self._primed = False
        self.error = error
        if error is not None:
            log.warning("%s", error)
            raise error
        self._rules = rules
        self._spec = _spec(rules)
        self._deletable = _spec([r for r in rules if r.deletable and not r.pattern.startswith("!")])
        return True

    def ignored(self, path: str) -> bool:
        """True when ``path`` ('/'-separated, relative to the root) is ignored. ``.ecosysignore`` at the
        root always is."""
        if path == IGNORE_FILE:
            return True
        return self._spec is not None and self._spec.match_file(path)

    def deletable(self, path: str) -> bool:
        """True when ``path`` is ignored by a ``(?d)`` pattern: it may go so that its folder can."""
        return self._deletable is not None and self.ignored(path) and self._deletable.match_file(path)

    def filter_scan(self, found: MutableMapping[str, tuple[int, int]],
                    indexed: MutableMapping[str, tuple[int, int]], whole: bool = True) -> None:
        """Take the ignored paths out of a walk's ``found`` and the index's ``indexed`` (both changed in
        place), so an ignored file is neither seen nor missing. ``whole``: the walk covered the whole
        task, so an ignored path on neither side is gone and is forgotten.

        Only paths not on both sides, or whose stamps differ, are matched: the rest were matched by an
        earlier scan under the same patterns, and the ones found ignored then are remembered. So a rescan
        of an unchanged tree costs one dictionary removal per ignored file, not a match per file."""
        if self._spec is None and IGNORE_FILE not in found:
            return
        if not self._primed:  # new patterns: every path is matched once
            differ = set(found).union(indexed)
            self._known.clear()
            self._primed = whole
        else:
            still = set()
            for path in self._known:
                on_disk = found.pop(path, None) is not None
                if indexed.pop(path, None) is not None or on_disk:
                    still.add(path)
            if whole:
                self._known = still
            if found == indexed:
                return
            differ = {p for p, _ in found.items() - indexed.items()}
            differ.update(indexed.keys() - found.keys())
        known = self._known
        for path in differ:
            if self.ignored(path):
                known.add(path)
                found.pop(path, None)
                indexed.pop(path, None)



class IgnoresByRoot:
    """The :class:`TaskIgnores` of each task root, made on first use and kept while the process runs."""

    def __init__(self) -> None:
        self._by_root: dict[tuple[Path, tuple[str, ...]], TaskIgnores] = {}

    def get(self, root: Path, defaults: Iterable[str] = ()) -> TaskIgnores:
        """The ignores of ``root`` with ``defaults`` (read again if a file changed); may raise
        IgnoreFileError, see :meth:`TaskIgnores.refresh`."""
        key = (root, tuple(defaults))
        ignores = self._by_root.get(key)
        if ignores is None:
            ignores = self._by_root[key] = TaskIgnores(root, key[1])
        ignores.refresh()
        return ignores


def read_patterns(root: Path) -> list[str]:
    """The lines of ``root``'s ``.ecosysignore`` as written (an empty list when there is none)."""
    try:
        return (root / IGNORE_FILE).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def write_patterns(root: Path, lines: Sequence[str]) -> None:
    """Replace ``root``'s ``.ecosysignore`` with ``lines`` atomically, after checking them (IgnoreFileError
    naming the line, and nothing written, when one is bad)."""
    text = "".join(line + "\n" for line in lines)
    parse_rules(text, str(root / IGNORE_FILE), root, root)
    with atomic_writer(root / IGNORE_FILE) as (fh, temp):
        fh.write(text.encode("utf-8"))
    commit_temp(temp, root / IGNORE_FILE)
