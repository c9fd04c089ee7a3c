"""User prompts through ``.btf`` files, the seed's contract, so that any front end can answer.

The backend writes a context into ``prompts/<FLAG>.btf`` (``<FLAG>~2.btf`` … when several prompts of one
flag are pending) and waits; a front end reads the context and appends its answer right after it, with
no newline in between. ``<id>.meta.json`` beside it records the flag, the context length and the
deadline, and ``<id>.done`` tells the backend the answer is complete (a seed front end that only
appends is understood too, once the file stops growing).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping

from .errors import NotFound, PromptTimeout

FLAGS = ("CHOOSELINKPATH", "OTDL", "MOTDL", "ALERT_USER", "LINK")
YES_ANSWERS = frozenset({"y", "yes", "o", "oui", "ok", "accept", "1", "true"})


def is_yes(answer: str) -> bool:
    """True when a person's answer to a yes/no prompt means yes (English or French, any case)."""
    return answer.strip().lower() in YES_ANSWERS


def normalize_flag(flag: str) -> str:
    """``[OTDL]`` and ``otdl`` both mean ``OTDL``."""
    flag = flag.strip().strip("[]").upper()
    if not flag or not all(c.isalnum() or c == "_" for c in flag):
        raise ValueError(f"invalid prompt flag {flag!r}")
    return flag


@dataclass(frozen=True)
class Prompt:
    """A pending prompt: its id (file stem), flag, context and when it was asked and expires."""

    id: str
    flag: str
    context: str
    created_at: datetime
    expires_at: datetime | None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "flag": self.flag,
            "context": self.context,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


class Prompts:
    """The ``.btf`` prompt folder of one ECOSYS_HOME."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()

    # -- backend side -------------------------------------------------------------------------------
    def post(self, flag: str, context: str, *, timeout: float | None = None) -> str:
        """Write a prompt without waiting; return its id. The context is written atomically."""
        flag = normalize_flag(flag)
        self.folder.mkdir(parents=True, exist_ok=True)
        data = context.encode("utf-8")
        now = time.time()
        with self._lock:
            for n in range(1, 10_000):
                prompt_id = flag if n == 1 else f"{flag}~{n}"
                meta_path = self._meta(prompt_id)
                try:
                    fd = os.open(meta_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                except FileExistsError:
                    continue
                break
            else:  # pragma: no cover - ten thousand pending prompts of one flag
                raise RuntimeError("too many pending prompts")
        meta = {"flag": flag, "context_bytes": len(data), "created": now,
                "expires": now + timeout if timeout else None, "pid": os.getpid()}
        tmp = self._btf(prompt_id).with_suffix(".btf.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, self._btf(prompt_id))
        with os.fdopen(fd, "w") as fh:
            json.dump(meta, fh)
        return prompt_id

    def wait(self, prompt_id: str, *, timeout: float | None = None, poll: float = 0.05,
             cancel: threading.Event | None = None) -> str:
        """Block until ``prompt_id`` is answered and return the answer; the prompt's files are removed.

        Raises PromptTimeout when ``timeout`` seconds pass (or ``cancel`` is set) with no answer.
        """
        try:
            for answer in self._answers(prompt_id, timeout, cancel):
                if answer is not None:
                    return answer
                time.sleep(poll)
        finally:
            self._remove(prompt_id)
        raise AssertionError("unreachable: _answers never ends")  # pragma: no cover

    async def wait_async(self, prompt_id: str, *, timeout: float | None = None, poll: float = 0.1,
                         cancel: threading.Event | None = None) -> str:
        """:meth:`wait` for an event loop: waiting for a person holds no thread."""
        try:
            for answer in self._answers(prompt_id, timeout, cancel):
                if answer is not None:
                    return answer
                await asyncio.sleep(poll)
        finally:
            self._remove(prompt_id)
        raise AssertionError("unreachable: _answers never ends")  # pragma: no cover

    def _answers(self, prompt_id: str, timeout: float | None, cancel: threading.Event | None
                 ) -> Iterator[str | None]:
        """None at each look while the prompt is unanswered, then its answer; PromptTimeout past the
        deadline or once cancelled. A seed front end only appends: its answer is complete once the file
        stops growing."""
        deadline = time.monotonic() + timeout if timeout is not None else None
        context_bytes = self._read_meta(prompt_id)["context_bytes"]
        last_size = -1
        while True:
            btf = self._btf(prompt_id)
            size = btf.stat().st_size if btf.exists() else 0
            if self._done(prompt_id).exists() or (size > context_bytes and size == last_size):
                yield btf.read_bytes()[context_bytes:].decode("utf-8", errors="replace")
                return
            last_size = size
            if (deadline is not None and time.monotonic() >= deadline) or (cancel is not None and cancel.is_set()):
                raise PromptTimeout(f"nobody answered the {prompt_id} prompt in time")
            yield None

    async def ask_async(self, flag: str, context: str, *, timeout: float | None = None,
                        cancel: threading.Event | None = None) -> str:
        """:meth:`ask` for an event loop (see :meth:`wait_async`)."""
        return await self.wait_async(self.post(flag, context, timeout=timeout), timeout=timeout, cancel=cancel)

    def ask(self, flag: str, context: str, *, timeout: float | None = None, poll: float = 0.05,
            cancel: threading.Event | None = None) -> str:
        """The seed's AskInput: write ``context`` under ``flag`` and block until a front end answers."""
        return self.wait(self.post(flag, context, timeout=timeout), timeout=timeout, poll=poll, cancel=cancel)

    # -- front-end side -----------------------------------------------------------------------------
    def pending(self) -> list[Prompt]:
        """Every unanswered, unexpired prompt, oldest first. Expired ones are cleaned away."""
        if not self.folder.is_dir():
            return []
        out = []
        for meta_path in self.folder.glob("*.meta.json"):
            prompt_id = meta_path.name.removesuffix(".meta.json")
            try:
                meta = self._read_meta(prompt_id)
                data = self._btf(prompt_id).read_bytes()
            except (OSError, ValueError):
                continue  # being written or removed right now
            if meta.get("expires") and meta["expires"] < time.time():
                self._remove(prompt_id)
                continue
            if self._done(prompt_id).exists() or len(data) > meta["context_bytes"]:
                continue
            out.append(Prompt(
                id=prompt_id,
                flag=meta["flag"],
                context=data.decode("utf-8", errors="replace"),
                created_at=datetime.fromtimestamp(meta["created"], timezone.utc),
                expires_at=datetime.fromtimestamp(meta["expires"], timezone.utc) if meta.get("expires") else None,
            ))
        return sorted(out, key=lambda p: (p.created_at, p.id))

    def find(self, flag_or_id: str) -> Prompt:
        """Return the pending prompt with that id, else the oldest pending one with that flag."""
        pending = self.pending()
        for prompt in pending:
            if prompt.id == flag_or_id:
                return prompt
        try:
            flag = normalize_flag(flag_or_id)
        except ValueError:
            flag = None
        for prompt in pending:
            if prompt.flag == flag:
                return prompt
        raise NotFound(f"no pending prompt {flag_or_id!r} (see 'ecosys prompts')")

    def read_context(self, flag_or_id: str) -> str:
        """The seed's ReadInputContext: the context of a pending prompt."""
        return self.find(flag_or_id).context

    def give(self, flag_or_id: str, answer: str) -> Prompt:
        """The seed's GiveInput: append ``answer`` right after the context; only the first answer counts."""
        prompt = self.find(flag_or_id)
        claim = self.folder / f"{prompt.id}.claim"
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            raise NotFound(f"prompt {prompt.id!r} was already answered") from None
        fd = os.open(self._btf(prompt.id), os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, answer.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(claim, self._done(prompt.id))
        except FileNotFoundError:
            pass  # the asker saw the answer already and cleared the prompt: answered all the same
        return prompt

    def wait_event_loop(self, callbacks: Mapping[str, Callable[[str], None]], stop: threading.Event,
                        poll: float = 0.1) -> None:
        """The seed's WaitEventLoop: call ``callbacks[flag](context)`` once per new pending prompt until
        ``stop`` is set. A callback usually answers with :meth:`give`."""
        wanted = {normalize_flag(flag): callback for flag, callback in callbacks.items()}
        seen: set[tuple[str, datetime]] = set()
        while not stop.is_set():
            for prompt in self.pending():
                key = (prompt.id, prompt.created_at)
                if key not in seen and prompt.flag in wanted:
                    seen.add(key)
                    wanted[prompt.flag](prompt.context)
            stop.wait(poll)

    # -- files ----------------------------------------------------------------------------------------
    def _btf(self, prompt_id: str) -> Path:
        return self.folder / f"{prompt_id}.btf"

    def _meta(self, prompt_id: str) -> Path:
        return self.folder / f"{prompt_id}.meta.json"

    def _done(self, prompt_id: str) -> Path:
        return self.folder / f"{prompt_id}.done"

    def _read_meta(self, prompt_id: str) -> dict:
        text = self._meta(prompt_id).read_text()
        if not text:
            raise ValueError("meta not written yet")
        return json.loads(text)

    def _remove(self, prompt_id: str) -> None:
        # The meta file goes last: it is the id's reservation.
        for path in (self._btf(prompt_id), self._done(prompt_id), self.folder / f"{prompt_id}.claim", self._meta(prompt_id)):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
