"""Files the dashboard's page hands to the daemon to send (largage from a browser): each upload batch is a
folder of ``ECOSYS_HOME/largage-uploads/``, filled one file at a time from request bodies streamed to
disk (memory stays bounded whatever the size), then offered to a device as any ``ecosys send`` is.
Batches older than a day are removed."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import time
from pathlib import Path

from ..errors import EcosysError, UnsafePath
from ..safe_paths import check_relative_path, join_inside

BATCH_RE = re.compile(r"^[0-9a-f]{16,64}$")
BLOCK = 1 << 20
MAX_AGE_S = 86_400.0


class Uploads:
    """The upload batches of one home."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _batch(self, batch: str) -> Path:
        if not BATCH_RE.match(batch):
            raise EcosysError("an upload batch is 16 to 64 lower-case hex digits")
        return self.folder / batch

    async def receive(self, batch: str, relative: str, reader: asyncio.StreamReader, length: int) -> Path:
        """Stream ``length`` bytes from ``reader`` into ``relative`` (a '/'-separated path) of ``batch``;
        written to a temp file and renamed, so a cut upload leaves nothing. EcosysError (UnsafePath for
        a path leaving the batch) with nothing written when it is refused."""
        try:
            relative = check_relative_path(relative)
        except UnsafePath as exc:
            raise EcosysError(f"bad upload path: {exc}") from None
        folder = self._batch(batch)
        folder.mkdir(parents=True, exist_ok=True)
        target = join_inside(folder, relative)
        if shutil.disk_usage(folder).free < length + (64 << 20):
            raise EcosysError("not enough free space on this device for that upload")
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".upload-{os.getpid()}-{target.name}")
        try:
            with open(temp, "wb") as fh:
                left = length
                while left:
                    block = await reader.read(min(BLOCK, left))
                    if not block:
                        raise EcosysError("the upload was cut short")
                    fh.write(block)
                    left -= len(block)
            os.replace(temp, target)
        finally:
            temp.unlink(missing_ok=True)
        return target

    def paths(self, batch: str) -> list[str]:
        """The top-level entries of ``batch`` (what is offered); EcosysError when it holds nothing."""
        folder = self._batch(batch)
        entries = sorted(str(p) for p in folder.iterdir()) if folder.is_dir() else []
        if not entries:
            raise EcosysError("nothing was uploaded in that batch")
        return entries

    def sweep(self, max_age_s: float = MAX_AGE_S) -> None:
        """Remove batches not touched for ``max_age_s`` (their offers are long done or gone)."""
        if not self.folder.is_dir():
            return
        limit = time.time() - max_age_s
        for batch in self.folder.iterdir():
            try:
                if batch.stat().st_mtime < limit:
                    shutil.rmtree(batch, ignore_errors=True)
            except OSError:
                pass
