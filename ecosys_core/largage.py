"""Largage aérien: send files (OTDL) or a folder (MOTDL) once to a nearby device, which accepts or declines.

Both kinds travel as a tar stream in DATA frames after the offer is accepted; the offer's payload is a JSON
manifest (names, sizes, sha256). The receiver:

- asks its user through the ``.btf`` prompts (flag OTDL or MOTDL) with sender, names, count and size;
  an unanswered offer expires after ``offer_timeout`` seconds (default 120); declining writes nothing;
- accepts offers from linked devices, and from any nearby device only when the "everyone" setting is on;
  a device whose offer was declined is not asked about again during ``cooldown`` seconds (default 300);
- streams what arrives into ``largage_aerien/.partial-<offer>/`` through a bounded queue (a few MiB of
  memory whatever the size), refuses any member escaping that folder, links pointing out, device files
  or anything not in the manifest, checks each file's size and sha256, and only then moves the top-level
  entries into ``largage_aerien/`` under names that clobber nothing. Any failure, decline or cancel
  removes the partial folder.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import secrets
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import EcosysError, IntegrityError, UnsafePath
from .safe_paths import check_relative_path, portable_name
from .store.settings_kv import get_setting

if TYPE_CHECKING:  # pragma: no cover
    from .daemon import Node
    from .net.protocol import Frame
    from .net.session import PeerSession

log = logging.getLogger("ecosys.largage")
YES = {"y", "yes", "o", "oui", "ok", "accept", "1", "true"}
CHUNK = 1 << 20
MAX_MANIFEST_FILES = 200_000


@dataclass
class Offer:
    """One offer, sent or received, and how far it got."""

    offer_id: str
    direction: str  # "send" or "receive"
    peer: str
    peer_name: str
    kind: str  # OTDL or MOTDL
    files: list[dict[str, Any]]
    total: int
    state: str = "waiting"  # waiting, sending, receiving, done, declined, expired, cancelled, failed
    done: int = 0
    error: str = ""
    saved: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    cancel: threading.Event = field(default_factory=threading.Event)
    queue: asyncio.Queue | None = None
    paths: list[tuple[Path, str]] = field(default_factory=list)  # sender: (local path, arcname)

    def public(self) -> dict[str, Any]:
        return {"offer_id": self.offer_id, "direction": self.direction, "peer": self.peer_name or self.peer[:12],
                "kind": self.kind, "count": len(self.files), "total": self.total, "done": self.done,
                "state": self.state, "error": self.error, "saved": self.saved,
                "names": [f["name"] for f in self.files[:10]]}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(paths: list[Path]) -> tuple[str, list[tuple[Path, str]], list[dict[str, Any]]]:
    """(kind, [(file, arcname)], manifest entries) for what ``ecosys send`` was given: files → OTDL,
    one folder → MOTDL (links and special files inside it are skipped)."""
    if len(paths) == 1 and paths[0].is_dir():
        top = paths[0].resolve()
        base = portable_name(top.name or "folder")
        items = []
        for folder, dirs, names in os.walk(top):
            dirs.sort()
            for name in sorted(names):
                path = Path(folder) / name
                if path.is_symlink() or not path.is_file():
                    continue
                rel = path.relative_to(top).as_posix()
                items.append((path, f"{base}/{'/'.join(portable_name(p) for p in rel.split('/'))}"))
        kind = "MOTDL"
    else:
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
        kind = "OTDL"
    if not items:
        raise EcosysError("nothing to send")
    manifest = [{"name": arc, "size": path.stat().st_size, "sha256": _sha256(path)} for path, arc in items]
    return kind, items, manifest


def non_clobbering(folder: Path, name: str) -> Path:
    """``folder/name``, or ``name (1).ext``, ``name (2).ext``… when taken."""
    candidate = folder / name
    stem, suffix = (name.rsplit(".", 1)[0], "." + name.rsplit(".", 1)[1]) if "." in name[1:] else (name, "")
    n = 1
    while candidate.exists() or candidate.is_symlink():
        candidate = folder / f"{stem} ({n}){suffix}"
        n += 1
    return candidate


class _QueueReader:
    """A file-like object reading DATA payloads from an asyncio queue (from a worker thread)."""

    def __init__(self, queue: asyncio.Queue, loop: asyncio.AbstractEventLoop, offer: Offer) -> None:
        self.queue, self.loop, self.offer = queue, loop, offer
        self.buffer = b""
        self.eof = False

    def _get(self) -> Any:
        while True:
            if self.offer.cancel.is_set():
                raise EcosysError("cancelled")
            try:
                return asyncio.run_coroutine_threadsafe(asyncio.wait_for(self.queue.get(), 0.5), self.loop).result()
            except (asyncio.TimeoutError, TimeoutError):
                continue

    def read(self, n: int = -1) -> bytes:
        while not self.eof and (n < 0 or len(self.buffer) < n):
            item = self._get()
            if item is None:
                self.eof = True
            elif isinstance(item, Exception):
                raise item
            else:
                self.buffer += item
                self.offer.done += len(item)
                if self.offer.done > self.offer.total + (1 << 20) + 1024 * len(self.offer.files) + (64 << 10):
                    raise IntegrityError("more data than the offer announced")
        if n < 0:
            out, self.buffer = self.buffer, b""
        else:
            out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out


def extract_offer(stream: Any, partial: Path, manifest: list[dict[str, Any]]) -> None:
    """Unpack the tar ``stream`` into ``partial``, member by member, refusing anything unsafe or unannounced
    and checking every file against the manifest. Raises UnsafePath or IntegrityError."""
    expected = {entry["name"]: entry for entry in manifest}
    seen: set[str] = set()
    partial_real = os.path.realpath(partial)
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            name = member.name.lstrip("./") if member.name.startswith("./") else member.name
            try:
                check_relative_path(name.rstrip("/"))
            except UnsafePath as exc:
                raise UnsafePath(f"refused member {member.name!r}: {exc}") from None
            name = "/".join(portable_name(p) for p in name.rstrip("/").split("/"))
            target = partial.joinpath(*name.split("/"))
            if os.path.commonpath([partial_real, os.path.realpath(target.parent)]) != partial_real:
                raise UnsafePath(f"refused member {member.name!r}: leads outside")
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
            target.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            source = tar.extractfile(member)
            assert source is not None
            with open(target, "wb") as out:
                while block := source.read(CHUNK):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if digest.hexdigest() != entry["sha256"]:
                raise IntegrityError(f"{name}: sha256 mismatch")
    missing = set(expected) - seen
    if missing:
        raise IntegrityError(f"{len(missing)} announced file(s) never came")


class LargageService:
    """The largage side of a running node: offers in and out."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.offers: dict[str, Offer] = {}
        self.cooldown_until: dict[str, float] = {}
        self.folder = node.home.largage
        for leftover in self.folder.glob(".partial-*"):  # a crash left them: they were never accepted data
            shutil.rmtree(leftover, ignore_errors=True)

    # -- settings ----------------------------------------------------------------------------
    def _setting(self, key: str, default: float) -> float:
        try:
            return float(get_setting(self.node.store, key) or default)
        except ValueError:
            return default

    @property
    def everyone(self) -> bool:
        return get_setting(self.node.store, "largage_everyone") == "1"

    # -- sending -----------------------------------------------------------------------------
    async def send(self, device: str, paths: list[str]) -> dict[str, Any]:
        """Offer ``paths`` to ``device``; returns at once with the offer (the transfer goes on)."""
        peer = self.node.resolve_device(device)
        kind, items, manifest = await self.node.run_engine(build_manifest, [Path(p) for p in paths])
        session = await self.node.session_for(peer)
        offer = Offer(secrets.token_hex(8), "send", peer, session.peer_name, kind, manifest,
                      sum(e["size"] for e in manifest), paths=items)
        self.offers[offer.offer_id] = offer
        payload = json.dumps({"files": manifest}).encode()
        await session.send({"flag": kind, "device_id": self.node.me, "offer_id": offer.offer_id,
                            "name": self.node.name, "total": offer.total}, payload)
        return offer.public()

    async def _stream(self, session: PeerSession, offer: Offer) -> None:
        loop = self.node.loop
        queue: asyncio.Queue = asyncio.Queue(maxsize=4)

        class Writer:
            def write(self, data: bytes) -> int:
                if offer.cancel.is_set():
                    raise EcosysError("cancelled")
                for start in range(0, len(data), CHUNK):
                    asyncio.run_coroutine_threadsafe(queue.put(bytes(data[start:start + CHUNK])), loop).result()
                return len(data)

        def produce() -> None:
            try:
                with tarfile.open(fileobj=Writer(), mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for path, arcname in offer.paths:
                        info = tar.gettarinfo(str(path), arcname)
                        info.uid = info.gid = 0
                        info.uname = info.gname = ""
                        with open(path, "rb") as fh:
                            tar.addfile(info, fh)
                asyncio.run_coroutine_threadsafe(queue.put(None), loop).result()
            except BaseException as exc:  # noqa: BLE001 - reported to the consumer
                asyncio.run_coroutine_threadsafe(queue.put(exc), loop).result()

        offer.state = "sending"
        producer = loop.run_in_executor(None, produce)
        try:
            buffer = bytearray()
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item:
                    buffer += item
                if buffer and (item is None or len(buffer) >= CHUNK):
                    await session.send({"flag": "DATA", "device_id": self.node.me, "offer_id": offer.offer_id},
                                       bytes(buffer))
                    offer.done = min(offer.total, offer.done + len(buffer))
                    buffer.clear()
                if item is None:
                    await session.send({"flag": "DATA", "device_id": self.node.me, "offer_id": offer.offer_id,
                                        "end": True})
                    return
        except BaseException as exc:
            was_cancelled = offer.cancel.is_set()
            offer.cancel.set()
            if offer.state == "sending":
                offer.state, offer.error = ("cancelled", "") if was_cancelled else ("failed", str(exc))
            while not producer.done():  # unblock the producer so its thread ends
                try:
                    queue.get_nowait()
                except asyncio.QueueEmpty:
                    await asyncio.sleep(0.01)
            raise

    # -- receiving -----------------------------------------------------------------------------
    async def on_offer(self, session: PeerSession, frame: Frame) -> None:
        h = frame.header
        offer_id = h.get("offer_id", "")

        def refuse(reason: str) -> None:
            session.answer(("OFFER_REFUSED", {"flag": "OFFER_REFUSED", "device_id": self.node.me,
                                              "offer_id": offer_id, "error": reason}, b""))

        if not offer_id or len(offer_id) > 64 or offer_id in self.offers:
            refuse("bad offer id")
            return
        linked = self.node.is_linked(session.peer)
        if not linked and not self.everyone:
            log.info("refused an offer from unlinked device %s", session.label)
            refuse("this device only accepts offers from linked devices")
            return
        if self.cooldown_until.get(session.peer, 0) > time.time():
            refuse("declined recently; try again later")
            return
        try:
            files = json.loads(frame.payload)["files"]
            manifest = []
            for entry in files[:MAX_MANIFEST_FILES + 1]:
                name = "/".join(portable_name(p) for p in check_relative_path(str(entry["name"])).split("/"))
                size, digest = int(entry["size"]), str(entry["sha256"])
                if size < 0 or len(digest) != 64:
                    raise ValueError("bad size or sha256")
                manifest.append({"name": name, "size": size, "sha256": digest})
            if not manifest or len(manifest) > MAX_MANIFEST_FILES:
                raise ValueError("no files, or too many")
        except (ValueError, KeyError, TypeError, UnsafePath, UnicodeDecodeError) as exc:
            refuse(f"bad manifest: {exc}")
            return
        total = sum(e["size"] for e in manifest)
        free = shutil.disk_usage(self.folder).free
        if total > free:
            refuse(f"not enough space ({total} bytes offered, {free} free)")
            return
        offer = Offer(offer_id, "receive", session.peer, session.peer_name, frame.flag, manifest, total)
        self.offers[offer_id] = offer
        timeout = self._setting("largage_offer_timeout_s", 120.0)
        names = ", ".join(e["name"] for e in manifest[:5]) + (" …" if len(manifest) > 5 else "")
        what = "a folder" if frame.flag == "MOTDL" else ("a file" if len(manifest) == 1 else "files")
        context = (f"{session.peer_name or 'A device'} ({session.peer[:12]}…{', linked' if linked else ', not linked'}) "
                   f"wants to send you {what}: {len(manifest)} file(s), {total} bytes: {names}. Accept? (yes/no)")
        prompt_id = self.node.prompts.post(frame.flag, context, timeout=timeout)
        offer.error = ""
        try:
            answer = await self.node.run_engine(
                lambda: self.node.prompts.wait(prompt_id, timeout=timeout, cancel=offer.cancel))
        except EcosysError:
            offer.state = "cancelled" if offer.cancel.is_set() else "expired"
            refuse("the offer was cancelled" if offer.cancel.is_set() else "nobody answered in time")
            return
        if answer.strip().lower() not in YES:
            offer.state = "declined"
            self.cooldown_until[session.peer] = time.time() + self._setting("largage_cooldown_s", 300.0)
            refuse("declined")
            return
        offer.state = "receiving"
        offer.queue = asyncio.Queue(maxsize=8)
        session.answer(("OFFER_ACCEPTED", {"flag": "OFFER_ACCEPTED", "device_id": self.node.me,
                                           "offer_id": offer_id}, b""))
        asyncio.ensure_future(self._receive(session, offer))

    async def _receive(self, session: PeerSession, offer: Offer) -> None:
        partial = self.folder / f".partial-{offer.offer_id}"
        partial.mkdir(parents=True)
        assert offer.queue is not None
        reader = _QueueReader(offer.queue, self.node.loop, offer)
        try:
            await self.node.run_engine(extract_offer, reader, partial, offer.files)
            saved = []
            for entry in sorted(partial.iterdir()):
                target = non_clobbering(self.folder, entry.name)
                os.rename(entry, target)
                saved.append(target.name)
            offer.saved, offer.state = saved, "done"
            log.info("received %s from %s into %s", ", ".join(saved), session.label, self.folder)
            session.answer(("OFFER_DONE", {"flag": "OFFER_DONE", "device_id": self.node.me,
                                           "offer_id": offer.offer_id}, b""))
        except BaseException as exc:
            if offer.state == "receiving":
                offer.state = "cancelled" if offer.cancel.is_set() else "failed"
                offer.error = str(exc)
                log.warning("largage %s from %s failed: %s", offer.offer_id, session.label, exc)
                if not offer.cancel.is_set():
                    session.answer(("CANCEL", {"flag": "CANCEL", "device_id": self.node.me,
                                               "offer_id": offer.offer_id, "error": str(exc)[:300]}, b""))
            while offer.queue.qsize():
                offer.queue.get_nowait()
            if not isinstance(exc, Exception):
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
            offer.queue = None

    async def on_data(self, session: PeerSession, frame: Frame) -> None:
        offer = self.offers.get(frame.header["offer_id"])
        if offer is None or offer.direction != "receive" or offer.peer != session.peer:
            return  # a late frame of a cancelled offer
        if offer.queue is None or offer.state != "receiving":
            return
        if frame.payload:
            await offer.queue.put(frame.payload)
        if frame.header.get("end"):
            await offer.queue.put(None)

    async def on_answer(self, session: PeerSession, frame: Frame) -> None:
        """OFFER_ACCEPTED / OFFER_REFUSED / OFFER_DONE / CANCEL from the peer."""
        offer = self.offers.get(frame.header.get("offer_id", ""))
        if offer is None or offer.peer != session.peer:
            return
        flag = frame.flag
        if flag == "OFFER_ACCEPTED" and offer.direction == "send" and offer.state == "waiting":
            asyncio.ensure_future(self._send_guarded(session, offer))
        elif flag == "OFFER_REFUSED" and offer.state == "waiting":
            offer.state, offer.error = "declined", str(frame.header.get("error", ""))
        elif flag == "OFFER_DONE" and offer.direction == "send":
            offer.state, offer.done = "done", offer.total
        elif flag == "CANCEL":
            offer.cancel.set()
            if offer.state in ("waiting", "sending", "receiving"):
                offer.state, offer.error = "cancelled", str(frame.header.get("error", "cancelled by the other side"))

    async def _send_guarded(self, session: PeerSession, offer: Offer) -> None:
        try:
            await self._stream(session, offer)
        except BaseException as exc:  # noqa: BLE001 - reported in the offer's state
            if offer.state in ("sending", "waiting"):
                offer.state, offer.error = "failed", str(exc)
            try:
                await session.send({"flag": "CANCEL", "device_id": self.node.me, "offer_id": offer.offer_id})
            except Exception:
                pass
        else:
            if offer.state == "sending":
                offer.state = "sent"

    def peer_gone(self, peer: str) -> None:
        """The connection with ``peer`` ended: its unfinished offers fail (partial data is removed)."""
        for offer in self.offers.values():
            if offer.peer == peer and offer.state in ("waiting", "sending", "receiving"):
                offer.cancel.set()
                offer.state, offer.error = "failed", "the connection ended"

    async def cancel(self, offer_id: str | None) -> list[str]:
        """Cancel one offer (or every unfinished one): both sides stop, partial data is removed."""
        cancelled = []
        for offer in list(self.offers.values()):
            if offer_id not in (None, offer.offer_id) or offer.state not in ("waiting", "sending", "receiving"):
                continue
            offer.cancel.set()
            offer.state = "cancelled"
            session = self.node.sessions.get(offer.peer)
            if session is not None:
                session.answer(("CANCEL", {"flag": "CANCEL", "device_id": self.node.me, "offer_id": offer.offer_id}, b""))
            cancelled.append(offer.offer_id)
        return cancelled


__all__ = ["LargageService", "Offer", "build_manifest", "extract_offer", "non_clobbering"]
