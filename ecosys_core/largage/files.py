"""The files of a largage: the manifest a sender builds and a receiver checks, and the stream that
carries their contents one after the other in manifest order, written into a partial folder. No archive
format is parsed: a tar's headers were what a hostile sender could make costly (a 192 MiB pax header, a
quadratic header regex holding the GIL); the manifest already says every name and size."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from ..errors import EcosysError, IntegrityError, UnsafePath
from ..hashing import sha256_file
from ..safe_paths import check_relative_path, portable_name
from .offers import Offer

CHUNK = 1 << 20
MAX_MANIFEST_FILES = 200_000
MAX_NAME = 4096


def build_manifest(paths: list[Path]) -> tuple[str, list[tuple[Path, str]], list[dict[str, Any]]]:
    """(kind, [(file, arcname)], manifest entries) for what ``ecosys send`` was given: files → OTDL,
    one folder → MOTDL (links and special files inside it are skipped)."""
    if len(paths) == 1 and paths[0].is_dir():
        items, kind = _folder_items(paths[0]), "MOTDL"
    else:
        items, kind = _file_items(paths), "OTDL"
    if not items:
        raise EcosysError("nothing to send")
    manifest = [{"name": arc, "size": path.stat().st_size, "sha256": sha256_file(path)} for path, arc in items]
    return kind, items, manifest


def _folder_items(folder: Path) -> list[tuple[Path, str]]:
    top = folder.resolve()
    base = portable_name(top.name or "folder")
    items = []
    for parent, dirs, names in os.walk(top):
        dirs.sort()
        for name in sorted(names):
            path = Path(parent) / name
            if path.is_symlink() or not path.is_file():
                continue
            rel = path.relative_to(top).as_posix()
            items.append((path, f"{base}/{'/'.join(portable_name(p) for p in rel.split('/'))}"))
    return items


def _file_items(paths: list[Path]) -> list[tuple[Path, str]]:
    items, seen = [], set()
    for path in paths:
        if path.is_dir():
            raise EcosysError(f"{path} is a folder: send one folder on its own")
        if not path.is_file():
            raise EcosysError(f"{path} is not a file")
        name = portable_name(path.name)
        if name in seen:
            raise EcosysError(f"two files called {name}")
        seen.add(name)
        items.append((path.resolve(), name))
    return items


def parse_manifest(payload: bytes) -> list[dict[str, Any]]:
    """The manifest an offer carries, each name made safe and portable; ValueError (or UnsafePath)
    for anything malformed, empty or too long."""
    try:
        files = json.loads(payload)["files"]
        manifest = []
        for entry in files[:MAX_MANIFEST_FILES + 1]:
            raw = str(entry["name"])
            if len(raw) > MAX_NAME:
                raise ValueError(f"a name longer than {MAX_NAME} characters")
            name = "/".join(portable_name(p) for p in check_relative_path(raw).split("/"))
            size, digest = entry["size"], str(entry["sha256"])
            if type(size) is not int or not 0 <= size < 2**63 or len(digest) != 64:
                raise ValueError("bad size or sha256")
            manifest.append({"name": name, "size": size, "sha256": digest.lower()})
    except (KeyError, TypeError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(str(exc)) from None
    if not manifest or len(manifest) > MAX_MANIFEST_FILES:
        raise ValueError("no files, or too many")
    _check_names(manifest)
    return manifest


def _check_names(manifest: list[dict[str, Any]]) -> None:
    """Refuse two files of one name, and a file named like a folder of another (ValueError)."""
    names = {entry["name"] for entry in manifest}
    if len(names) != len(manifest):
        raise ValueError("two files of the same name")
    for name in names:
        parts = name.split("/")
        for end in range(1, len(parts)):
            if "/".join(parts[:end]) in names:
                raise ValueError(f"{'/'.join(parts[:end])!r} is both a file and a folder")


def non_clobbering(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name (1).ext``, ``name (2).ext``… when taken."""
    candidate = folder / name
    stem, suffix = (name.rsplit(".", 1)[0], "." + name.rsplit(".", 1)[1]) if "." in name[1:] else (name, "")
    n = 1
    while candidate.exists() or candidate.is_symlink():
        candidate = folder / f"{stem} ({n}){suffix}"
        n += 1
    return candidate


class QueueReader:
    """A file-like object reading DATA payloads from an asyncio queue (from a worker thread)."""

    def __init__(self, queue: asyncio.Queue, loop: asyncio.AbstractEventLoop, offer: Offer) -> None:
        self.queue, self.loop, self.offer = queue, loop, offer
        self.buffer = b""
        self.eof = False
        self.received = 0  # stream bytes (tar headers and padding included); the offer counts file bytes

    def _get(self) -> Any:
        while True:
            if self.offer.cancel.is_set():
                raise EcosysError("cancelled")
            try:
                return asyncio.run_coroutine_threadsafe(asyncio.wait_for(self.queue.get(), 0.5), self.loop).result()
            except (asyncio.TimeoutError, TimeoutError):
                continue

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes (all until the end with -1); IntegrityError past what the offer announced."""
        while not self.eof and (n < 0 or len(self.buffer) < n):
            item = self._get()
            if item is None:
                self.eof = True
            elif isinstance(item, Exception):
                raise item
            else:
                self.buffer += item
                self.received += len(item)
                if self.received > self.offer.total:
                    raise IntegrityError("more data than the offer announced")
        if n < 0:
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


def extract_offer(stream: Any, partial: Path, manifest: list[dict[str, Any]],
                  progress: Callable[[int], None] = lambda _n: None) -> None:
    """Write the files of ``manifest`` into ``partial`` from ``stream``, which carries their contents one
    after the other in manifest order and nothing else (no headers to parse: the manifest already says
    each name and size). Each file is made durable and checked against its sha256; ``progress`` is told
    of each block written. Raises IntegrityError (or UnsafePath) at the first thing that does not match."""
    partial_real = os.path.realpath(partial)
    for entry in manifest:
        name = entry["name"]
        target = partial.joinpath(*name.split("/"))
        target.parent.mkdir(parents=True, exist_ok=True)
        if os.path.commonpath([partial_real, os.path.realpath(target.parent)]) != partial_real:
            raise UnsafePath(f"refused {name!r}: leads outside")
        _write_file(stream, target, name, entry["size"], entry["sha256"], progress)
    if stream.read(1):
        raise IntegrityError("more data than the offer announced")


def _write_file(stream: Any, target: Path, name: str, size: int, sha256: str, progress: Callable[[int], None]) -> None:
    """Copy ``size`` bytes of ``stream`` durably to ``target``; IntegrityError unless they hash to ``sha256``."""
    digest = hashlib.sha256()
    left = size
    with open(target, "xb") as out:
        while left:
            block = stream.read(min(CHUNK, left))
            if not block:
                raise IntegrityError(f"{name}: the transfer ended {left} bytes early")
            digest.update(block)
            out.write(block)
            progress(len(block))
            left -= len(block)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != sha256:
        raise IntegrityError(f"{name}: sha256 mismatch")
