"""Start the daemon at login (the seed's wish to start with the machine).

Linux: a systemd user unit (``~/.config/systemd/user/ecosys.service``) where systemd is there, else an XDG
autostart entry (``~/.config/autostart/ecosys.desktop``). Windows: a command in the Startup folder.
macOS: a LaunchAgent. Each file runs ``python -m ecosys_core --home HOME up``.
"""

from __future__ import annotations

import os
import plistlib
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from .resolve import current_platform


@dataclass(frozen=True)
class AutostartEntry:
    """One file that makes the daemon start at login, and what it contains."""

    path: Path
    content: str
    kind: str


def _config_home() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")


def entry_for(home: Path, platform: str | None = None, *, systemd: bool | None = None) -> AutostartEntry:
    """The autostart file for ECOSYS_HOME ``home`` on ``platform`` (this machine's by default)."""
    platform = platform or current_platform()
    python = sys.executable
    args = [python, "-m", "ecosys_core", "--home", str(home), "up"]
    if platform == "Win32":
        startup = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
        startup = startup / "Microsoft" / "Windows" / "Start Menu" / "Programs" / "Startup"
        pythonw = str(Path(python).with_name("pythonw.exe"))
        line = subprocess.list2cmdline([pythonw, *args[1:]])
        return AutostartEntry(startup / "ecosys.cmd", f'@echo off\r\nstart "" /min {line}\r\n', "startup-folder")
    if platform == "Darwin":
        plist = {"Label": "org.ecosys.daemon", "ProgramArguments": args, "RunAtLoad": True,
                 "KeepAlive": {"SuccessfulExit": False}, "StandardErrorPath": str(home / "logs" / "daemon.log")}
        return AutostartEntry(Path.home() / "Library" / "LaunchAgents" / "org.ecosys.daemon.plist",
                              plistlib.dumps(plist).decode(), "launchagent")
    if systemd is None:
        systemd = shutil.which("systemctl") is not None
    command = shlex.join(args)
    if systemd:
        unit = ("[Unit]\nDescription=Ecosys synchronisation daemon\nAfter=network-online.target\n\n"
                f"[Service]\nExecStart={command}\nRestart=on-failure\nRestartSec=5\n\n"
                "[Install]\nWantedBy=default.target\n")
        return AutostartEntry(_config_home() / "systemd" / "user" / "ecosys.service", unit, "systemd-user")
    desktop = ("[Desktop Entry]\nType=Application\nName=Ecosys\nComment=Ecosys synchronisation daemon\n"
               f"Exec={command}\nTerminal=false\nX-GNOME-Autostart-enabled=true\n")
    return AutostartEntry(_config_home() / "autostart" / "ecosys.desktop", desktop, "xdg-autostart")


def enable(entry: AutostartEntry) -> str:
    """Write the entry (and tell systemd, best effort); return what was done."""
    entry.path.parent.mkdir(parents=True, exist_ok=True)
    entry.path.write_text(entry.content, encoding="utf-8")
    note = f"wrote {entry.path}"
    if entry.kind == "systemd-user":
        done = _systemctl("daemon-reload") and _systemctl("enable", "ecosys.service")
        note += "; systemd enabled it" if done else "; run 'systemctl --user enable ecosys.service' to activate it"
    return note


def disable(entry: AutostartEntry) -> str:
    """Remove the entry; return what was done."""
    if entry.kind == "systemd-user":
        _systemctl("disable", "ecosys.service")
    if entry.path.exists():
        entry.path.unlink()
        return f"removed {entry.path}"
    return "autostart was not enabled"


def is_enabled(entry: AutostartEntry) -> bool:
    return entry.path.exists()


def _systemctl(*args: str) -> bool:
    if os.environ.get("ECOSYS_NO_SYSTEMCTL") or shutil.which("systemctl") is None:
        return False
    try:
        return subprocess.run(["systemctl", "--user", *args], capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False
