"""The JSON Schemas published in ``schemas/``, generated from the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pluggy import HookRelay

from .models import schema_documents


def all_schema_documents(hook: HookRelay) -> dict[str, dict[str, Any]]:
    """Every schema document by file name: the models', plus those plugins register."""
    documents = dict(schema_documents())
    hook.register_schemas(register=documents.__setitem__)
    return documents


def render(document: dict[str, Any]) -> str:
    """The exact text written for a schema (stable, so a drift test can compare)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path, hook: HookRelay) -> list[Path]:
    """Write every schema into ``directory`` and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, document in sorted(all_schema_documents(hook).items()):
        path = directory / filename
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written
