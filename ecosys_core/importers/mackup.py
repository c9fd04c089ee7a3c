"""Mackup's application definitions (``applications/*.cfg``, INI files) as format 2 grapins.

A definition names files and folders relative to the home (``[configuration_files]``) or to
``$XDG_CONFIG_HOME`` (``[xdg_configuration_files]``), without saying which is a file. Each becomes a
path of the grapin, found as whatever is there (``"File": null``); paths under ``Library/`` exist on
macOS only. Mackup's definitions are GPL-3.0-or-later: they are read from the user's copy, and what is
made of them stays on the user's machine.
"""

from __future__ import annotations

import configparser
import importlib.util
from pathlib import Path
from typing import Any

from ..errors import NotFound
from .common import ImportResult, outermost, safe_part_name, uses_dotdot

LICENCE = "GPL-3.0-or-later"


def find_applications(folder: Path | None) -> Path:
    """The folder of ``*.cfg`` definitions: ``folder`` itself (an ``applications/`` folder or
    ``~/.mackup``), or the ``applications`` folder of the installed ``mackup`` package. NotFound says
    what to give when there is none."""
    if folder is not None:
        if not folder.is_dir():
            raise NotFound(f"{folder} is not a folder of Mackup definitions")
        return folder
    spec = importlib.util.find_spec("mackup")
    if spec is None or spec.origin is None:
        raise NotFound("Mackup is not installed here: give its 'applications' folder (or ~/.mackup) as DIR")
    apps = Path(spec.origin).parent / "applications"
    if not apps.is_dir():
        raise NotFound(f"the installed Mackup has no applications folder ({apps})")
    return apps


def mackup_version(folder: Path) -> str:
    """The version of the Mackup package holding ``folder``, or "" when it is not one."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        spec = importlib.util.find_spec("mackup")
        if spec is not None and spec.origin is not None and Path(spec.origin).parent == folder.parent:
            return version("mackup")
    except (PackageNotFoundError, ValueError):
        pass
    for info in folder.parent.parent.glob("mackup-*.dist-info"):
        return info.name.removeprefix("mackup-").removesuffix(".dist-info")
    return ""


def import_mackup(folder: Path) -> ImportResult:
    """Every ``*.cfg`` of ``folder`` as a grapin (or a skipped row with the reason)."""
    result = ImportResult({"source": "mackup", "from": str(folder), "version": mackup_version(folder),
                           "licence": LICENCE})
    for cfg in sorted(folder.glob("*.cfg")):
        try:
            grapin, reason = _grapin(cfg)
        except (configparser.Error, UnicodeDecodeError, OSError) as exc:
            grapin, reason = None, f"unreadable: {exc}".splitlines()[0]
        result.add(cfg.stem, grapin, reason)
    return result


def _grapin(cfg: Path) -> tuple[dict[str, Any] | None, str]:
    parser = configparser.ConfigParser(allow_no_value=True, interpolation=None, delimiters=("=",))
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # paths keep their case
    parser.read(cfg, encoding="utf-8")
    name = parser.get("application", "name", fallback="").strip()
    if not name:
        return None, "no [application] name"
    home = [p for p in (parser.options("configuration_files") if parser.has_section("configuration_files") else [])]
    xdg = [p for p in (parser.options("xdg_configuration_files") if parser.has_section("xdg_configuration_files")
                       else [])]
    bad = [p for p in home + xdg if uses_dotdot(p)]
    home, xdg = [p for p in home if p not in bad], [p for p in xdg if p not in bad]
    if not home and not xdg:
        return None, "names no file" + (f" outside the home ({bad[0]})" if bad else "")
    paths: list[dict[str, Any]] = []
    taken: list[str] = []
    platforms: set[str] = set()
    for rel in outermost(home):
        where = ["Darwin"] if rel.startswith("Library/") else ["Linux", "Darwin"]
        platforms.update(where)
        part = safe_part_name(rel, taken)
        taken.append(part)
        paths.append({"Name": part, "File": None, "Locations": {p: [f"~/{rel}"] for p in where}})
    for rel in outermost(xdg):
        platforms.update(("Linux", "Darwin"))
        part = safe_part_name("xdg__" + rel, taken)
        taken.append(part)
        paths.append({"Name": part, "File": None, "Locations": {"Any": [f"%XDG_CONFIG_HOME%/{rel}"]}})
    order = [p for p in ("Linux", "Darwin") if p in platforms]
    return {"FormatVersion": 2, "AppName": name, "SupportedPlatforms": order,
            "AppDescription": f"Imported from Mackup ({cfg.name})", "Paths": paths}, \
        (f"{len(bad)} path(s) outside the home left out" if bad else "")
