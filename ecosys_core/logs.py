"""The daemon's log: to stderr for the terminal it runs in, and to a rotating file in
``ECOSYS_HOME/logs/ecosys.log`` on every platform (5 files of 1 MiB), which ``ecosys status`` names."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOG_NAME = "ecosys.log"
FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def log_file(logs: Path) -> Path:
    """Where the daemon of the home whose log folder is ``logs`` writes."""
    return logs / LOG_NAME


def setup_daemon_logging(logs: Path, *, verbose: bool = False) -> Path:
    """Send the process's logs to stderr and to the rotating file; return the file's path."""
    logs.mkdir(parents=True, exist_ok=True)
    path = log_file(logs)
    to_file = logging.handlers.RotatingFileHandler(path, maxBytes=1 << 20, backupCount=4, encoding="utf-8")
    to_file.setFormatter(logging.Formatter(FORMAT))
    to_stderr = logging.StreamHandler()
    to_stderr.setFormatter(logging.Formatter(FORMAT))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, force=True, handlers=[to_stderr, to_file])
    return path
