"""Build hook: compile the scanner's optional C walk (``ecosys_core/sync/_walk.c``) into the wheel.

The walk is an accelerator, not a requirement: without a C compiler (or on Windows) the wheel stays
pure Python and the scanner walks in Python. The module is also left next to its source, as
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

SOURCE = Path("ecosys_core", "sync", "_walk.c")


def compile_walk(root: Path, out_dir: Path | None = None) -> Path:
    """Compile ``_walk.c`` under ``root`` for the running interpreter into ``out_dir`` (default: beside
    the source) and return the module's path. Raises OSError or CalledProcessError when it cannot."""
    if os.name != "posix":
        raise OSError("the C walk is built on POSIX systems only")
    source = root / SOURCE
    target = (out_dir or source.parent) / ("_walk" + sysconfig.get_config_var("EXT_SUFFIX"))
    linker = os.environ.get("LDSHARED") or sysconfig.get_config_var("LDSHARED") or "cc -shared"
    command = [*shlex.split(linker), "-O2", "-fPIC", "-pthread", "-I" + sysconfig.get_paths()["include"],
               str(source), "-o", str(target)]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return target


class WalkBuildHook(BuildHookInterface):
    """Adds the compiled walk to platform wheels; leaves a pure wheel when it cannot be compiled."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or version == "editable":
            return
        try:
            built = compile_walk(Path(self.root))
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", "") or exc
            self.app.display_warning(f"C walk not built, the scanner will walk in Python: {detail}")
            return
        build_data["force_include"][str(built)] = str(built.relative_to(self.root))
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
