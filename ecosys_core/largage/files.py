"""The files of a largage: the manifest a sender builds and a receiver checks, and the tar stream
unpacked member by member into a partial folder, refusing anything unsafe or unannounced."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tarfile
from pathlib import Path
from typing import Any, Callable

from ..errors import EcosysError, IntegrityError, UnsafePath
from ..hashing import sha256_file
from ..safe_paths import check_relative_path, portable_name
from .offers import Offer

CHUNK = 1 << 20
MAX_MANIFEST_FILES = 200_000


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
            name = "/".join(portable_name(p) for p in check_relative_path(str(entry["name"])).split("/"))
            size, digest = int(entry["size"]), str(entry["sha256"])
            if size < 0 or len(digest) != 64:
                raise ValueError("bad size or sha256")
            manifest.append({"name": name, "size": size, "sha256": digest})
    except (KeyError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    if not manifest or len(manifest) > MAX_MANIFEST_FILES:
        raise ValueError("no files, or too many")
    return manifest


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
                if self.received > self.offer.total + (1 << 20) + 1024 * len(self.offer.files) + (64 << 10):
                    raise IntegrityError("more data than the offer announced")
        if n < 0:
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


def extract_offer(stream: Any, partial: Path, manifest: list[dict[str, Any]],
                  progress: Callable[[int], None] = lambda _n: None) -> None:
    """Unpack the tar ``stream`` into ``partial``, member by member, refusing anything unsafe or unannounced
    and checking every file against the manifest; ``progress`` is told of each block of file bytes
    written. Raises UnsafePath or IntegrityError."""
    expected = {entry["name"]: entry for entry in manifest}
    seen: set[str] = set()
    partial_real = os.path.realpath(partial)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name, target = _member_target(member, partial, partial_real)
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if not member.isfile():
                raise UnsafePath(f"refused member {member.name!r}: links and special files are not accepted")
            entry = expected.get(name)
            if entry is None or name in seen:
                raise IntegrityError(f"member {member.name!r} was not in the offer")
            if member.size != entry["size"]:
                raise IntegrityError(f"{name}: {member.size} bytes, the offer said {entry['size']}")
            seen.add(name)
            _write_member(tar, member, target, name, entry["sha256"], progress)
    missing = set(expected) - seen
    if missing:
        raise IntegrityError(f"{len(missing)} announced file(s) never came")


def _member_target(member: tarfile.TarInfo, partial: Path, partial_real: str) -> tuple[str, Path]:
    """The member's portable name and where it goes inside ``partial``; UnsafePath if it leads out."""
    name = member.name.lstrip("./") if member.name.startswith("./") else member.name
    try:
        check_relative_path(name.rstrip("/"))
    except UnsafePath as exc:
        raise UnsafePath(f"refused member {member.name!r}: {exc}") from None
    name = "/".join(portable_name(p) for p in name.rstrip("/").split("/"))
    target = partial.joinpath(*name.split("/"))
    if os.path.commonpath([partial_real, os.path.realpath(target.parent)]) != partial_real:
        raise UnsafePath(f"refused member {member.name!r}: leads outside")
    return name, target


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, name: str, sha256: str,
                  progress: Callable[[int], None]) -> None:
    """Write the member's bytes durably to ``target``; IntegrityError unless they hash to ``sha256``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    source = tar.extractfile(member)
    assert source is not None
    with open(target, "wb") as out:
        while block := source.read(CHUNK):
            digest.update(block)
            out.write(block)
            progress(len(block))
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != sha256:
        raise IntegrityError(f"{name}: sha256 mismatch")
