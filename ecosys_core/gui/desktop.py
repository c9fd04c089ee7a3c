"""Showing a folder in the person's file manager (the dashboard's "Open folder")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import EcosysError


def open_folder(folder: Path) -> None:
    """Open ``folder`` in the desktop's file manager; EcosysError when this device has none."""
    folder.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        os.startfile(folder)  # type: ignore[attr-defined]
        return
    opener = "open" if sys.platform == "darwin" else shutil.which("xdg-open")
    if opener is None:
        raise EcosysError(f"no file manager here to open {folder}")
    subprocess.Popen([opener, str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
