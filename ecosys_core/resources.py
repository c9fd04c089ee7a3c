"""Find the bundled grapins and JSON Schemas, whether installed from a wheel or run from a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def bundled_dir(name: str) -> Path:
    """Return the folder of bundled ``name`` ("plugins" or "schemas").

    A wheel carries them inside the package (``ecosys_core/_bundled/<name>``); an editable install or a
    source checkout has them at the top of the repository, beside the package.
    """
    inside = _PACKAGE_DIR / "_bundled" / name
    if inside.is_dir():
        return inside
    return _PACKAGE_DIR.parent / name
