"""The bench scripts are not run by CI, so a renamed function they import would only show the next time
someone measures (stop 26 removed ``transport._cert_der``; ``bench/sync.py`` then failed at once). This
checks that every name they import from Ecosys or from the test helpers still exists."""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def imported_names(script: Path) -> list[tuple[str, str]]:
    """(module, name) for each ``from ecosys_core… / tests… import name`` anywhere in ``script``."""
    found = []
    for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"), str(script))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("ecosys_core", "tests"):
            found += [(node.module, alias.name) for alias in node.names]
    return found


@pytest.mark.parametrize("script", sorted(BENCH.glob("*.py")), ids=lambda p: p.name)
def test_what_a_bench_script_imports_exists(script: Path):
    for module, name in imported_names(script):
        loaded = importlib.import_module(module)
        assert hasattr(loaded, name) or importlib.util.find_spec(f"{module}.{name}") is not None, \
            f"{script.name} imports {name} from {module}, which has no such name"
