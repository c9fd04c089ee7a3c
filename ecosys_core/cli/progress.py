"""The transfer bar every command that moves bytes shows (bytes, rate, time left), quiet when stderr is
not a terminal so scripts and pipes get clean output."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported when a bar is shown, not for every command
    from rich.progress import Progress


def transfer_progress(*, transient: bool = False) -> "Progress":
    """A rich Progress with description, bar, bytes, speed and time left (a context manager)."""
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    return Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), transient=transient,
                    disable=not sys.stderr.isatty())
