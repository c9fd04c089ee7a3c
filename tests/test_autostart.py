"""`ecosys autostart` writes what makes the daemon start at login, per platform, and removes it."""

from __future__ import annotations

import plistlib
from pathlib import Path

import pytest

from ecosys_core.autostart import disable, enable, entry_for, is_enabled


@pytest.fixture(autouse=True)
def fake_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("APPDATA", str(tmp_path / "AppData" / "Roaming"))
    monkeypatch.setenv("ECOSYS_NO_SYSTEMCTL", "1")


def test_systemd_user_unit(tmp_path: Path):
    entry = entry_for(tmp_path / "eco home", "Linux", systemd=True)
    assert entry.path == tmp_path / "config" / "systemd" / "user" / "ecosys.service"
    assert "enable ecosys.service" in enable(entry)
    text = entry.path.read_text()
    assert "ExecStart=" in text and "-m ecosys_core --home" in text and "'" + str(tmp_path / "eco home") + "'" in text
    exec_start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    assert exec_start.endswith(" up")  # default flags, as a new user starts it: zeroconf on every address
    assert "WantedBy=default.target" in text and is_enabled(entry)
    assert disable(entry).startswith("removed") and not entry.path.exists()


def test_xdg_autostart_without_systemd(tmp_path: Path):
    entry = entry_for(tmp_path / "h", "Linux", systemd=False)
    enable(entry)
    assert entry.path == tmp_path / "config" / "autostart" / "ecosys.desktop"
    assert "Exec=" in entry.path.read_text() and " up" in entry.path.read_text()


def test_windows_startup_folder(tmp_path: Path):
    entry = entry_for(tmp_path / "h", "Win32")
    enable(entry)
    assert entry.path.parent.name == "Startup" and entry.path.name == "ecosys.cmd"
    assert "pythonw" in entry.path.read_text() and "ecosys_core" in entry.path.read_text()


def test_macos_launch_agent(tmp_path: Path):
    entry = entry_for(tmp_path / "h", "Darwin")
    enable(entry)
    plist = plistlib.loads(entry.path.read_bytes())
    assert plist["RunAtLoad"] and plist["ProgramArguments"][-1] == "up" and plist["Label"] == "org.ecosys.daemon"


def test_cli(run_cli, tmp_path: Path):
    assert "disabled" in run_cli("autostart", "status").output
    assert run_cli("autostart", "enable").exit_code == 0
    assert "enabled" in run_cli("autostart", "status").output
    assert "removed" in run_cli("autostart", "disable").output
