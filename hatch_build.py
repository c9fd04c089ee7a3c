"""Build hook: compile the sync engine's optional C modules into the wheel: the scanner's walk
(``ecosys_core/sync/_walk.c``) and the chunk boundaries of signatures (``ecosys_core/sync/_cdc.c``).

They are accelerators, not requirements: without a C compiler (or on Windows) the wheel stays pure
Python and the same work is done in Python. Each module is also left next to its source, as
``build_ext --inplace`` would, so tests and benches run from a checkout use it too.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NATIVE = Path("ecosys_core", "sync")
MODULES = ("_walk", "_cdc")


def compile_module(root: Path, name: str, out_dir: Path | None = None) -> Path:
    """Compile ``<name>.c`` (one of ``MODULES``) under ``root`` for the running interpreter into
    ``out_dir`` (default: beside the source) and return the module's path. Raises OSError or
    CalledProcessError when it cannot."""
    if os.name != "posix":
        raise OSError("the C modules are built on POSIX systems only")
    source = root / NATIVE / f"{name}.c"
    target = (out_dir or source.parent) / (name + sysconfig.get_config_var("EXT_SUFFIX"))
    linker = os.environ.get("LDSHARED") or sysconfig.get_config_var("LDSHARED") or "cc -shared"
    command = [*shlex.split(linker), "-O2", "-fPIC", "-pthread", "-I" + sysconfig.get_paths()["include"],
               str(source), "-o", str(target), "-lm"]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return target


class NativeBuildHook(BuildHookInterface):
    """Adds the compiled modules to platform wheels; leaves a pure wheel when none can be compiled."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        for name in MODULES:
            try:
                built = compile_module(Path(self.root), name)
            except (OSError, subprocess.CalledProcessError) as exc:
                detail = getattr(exc, "stderr", "") or exc
                self.app.display_warning(f"C module {name} not built, Python does its work: {detail}")
                continue
            build_data["force_include"][str(built)] = str(built.relative_to(self.root))
            build_data["pure_python"] = False
            build_data["infer_tag"] = True
