"""The layers, as a test: dependencies point one way (cli → daemon → sync engine / net / largage →
store, delta, protocol). Every import counts, including those inside functions and behind
``TYPE_CHECKING``: an upward dependency hidden there is still one."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ecosys_core"
BASE = ("ecosys_core.errors", "ecosys_core.types")  # value types and exceptions every layer may use


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything ``path`` imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
    return found


def modules(under: str) -> list[Path]:
    folder = ROOT.joinpath(*under.split("."))
    return sorted(folder.rglob("*.py")) if folder.is_dir() else [folder.with_suffix(".py")]


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def violations(under: str, allowed: tuple[str, ...] | None = None, forbidden: tuple[str, ...] = ()) -> list[str]:
    """Imports of ecosys_core/magasin modules by the modules ``under`` that are not ``allowed`` (when
    given) or are ``forbidden``."""
    bad = []
    for path in modules(under):
        for name in sorted(imports_of(path)):
            if not within(name, ("ecosys_core", "magasin")):
                continue
            if within(name, forbidden) or (allowed is not None and not within(name, allowed)):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    return bad


def test_the_store_imports_nothing_above_it():
    assert violations("ecosys_core.store", allowed=("ecosys_core", "ecosys_core.store", *BASE)) == []


def test_the_frame_protocol_imports_nothing_of_ours():
    assert violations("ecosys_core.net.protocol", allowed=("ecosys_core.net",)) == []


def test_sync_imports_neither_net_nor_cli_nor_the_daemon():
    above = ("ecosys_core.net", "ecosys_core.cli", "ecosys_core.daemon", "ecosys_core.control_commands",
             "ecosys_core.link_exchange", "ecosys_core.largage", "ecosys_core.status")
    assert violations("ecosys_core.sync", forbidden=above) == []


def test_net_does_not_import_the_daemon_or_what_it_composes():
    above = ("ecosys_core.daemon", "ecosys_core.cli", "ecosys_core.control_commands", "ecosys_core.link_exchange",
             "ecosys_core.largage", "ecosys_core.sync.engine")
    assert violations("ecosys_core.net", forbidden=above) == []


@pytest.mark.parametrize("part", ["ecosys_core.largage", "ecosys_core.link_exchange", "ecosys_core.status",
                                  "ecosys_core.control_commands"])
def test_the_daemon_parts_do_not_import_the_daemon_or_the_cli(part: str):
    assert violations(part, forbidden=("ecosys_core.daemon", "ecosys_core.cli")) == []


def test_only_the_cli_imports_the_cli():
    bad = [v for v in violations("ecosys_core", forbidden=("ecosys_core.cli",))
           if not v.startswith(("ecosys_core/cli/", "ecosys_core/__main__.py"))]  # the entry point
    assert bad == []


def test_ecosys_core_never_imports_magasin():
    assert violations("ecosys_core", forbidden=("magasin",)) == []


def test_an_upward_import_is_caught(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The checker itself: a TYPE_CHECKING import of the daemon from sync is reported."""
    fake_root = tmp_path / "repo"
    folder = fake_root / "ecosys_core" / "sync"
    folder.mkdir(parents=True)
    (folder / "sneaky.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                      "    from ..daemon import Node\n")
    monkeypatch.setitem(globals(), "ROOT", fake_root)
    assert violations("ecosys_core.sync", forbidden=("ecosys_core.daemon",)) == [
        "ecosys_core/sync/sneaky.py imports ecosys_core.daemon",
        "ecosys_core/sync/sneaky.py imports ecosys_core.daemon.Node",
    ]
