"""The optional C modules, compiled from their sources for a test as the wheel compiles them
(``hatch_build.compile_module``), and loaded apart from the copies the checkout may hold."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from hatch_build import compile_module  # noqa: E402  (the same build the wheel gets)


def build_native(name: str, folder: Path) -> ModuleType:
    """C module ``name`` (``_walk``, ``_cdc``) built into ``folder`` and loaded; the calling test is
    skipped where this machine cannot compile it."""
    try:
        built = compile_module(ROOT, name, folder)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"{name}.c cannot be compiled on this machine: {getattr(exc, 'stderr', '') or exc}")
    loader = importlib.machinery.ExtensionFileLoader(name, str(built))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader))
    loader.exec_module(module)
    return module
