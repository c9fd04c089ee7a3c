"""The wheel carries the bundled grapins and schemas inside the package and declares the ``ecosys`` script,
so a plain non-editable ``pip install .`` finds them (ecosys_core.resources looks there first)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parent.parent


def test_wheel_contains_package_data_and_console_script(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, timeout=300, cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("ecosys-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    bundled = [n for n in names if n.startswith("ecosys_core/_bundled/plugins/") and n.endswith(".json")]
    assert len(bundled) == len(list((ROOT / "plugins").glob("*.json"))) >= 15
    assert "ecosys_core/_bundled/schemas/grapin.schema.json" in names
    assert "magasin/sample/store/magasin_database.json" in names
    assert "ecosys_core/_bundled/schemas/magasin.schema.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "ecosys = ecosys_core.cli:main" in text
    assert "magasin = magasin.plugin" in text
    native = [n for n in names if n.startswith("ecosys_core/sync/_walk")]
    if os.name == "posix" and (shutil.which("cc") or shutil.which("gcc")):
        assert len(native) == 1 and native[0].endswith(".so"), names  # the scanner's C walk
        assert not wheel.name.endswith("-none-any.whl")  # a platform wheel, since it carries C code
