"""The JSON Schemas published in ``schemas/``, generated from the pydantic models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .models import schema_documents

_extra_documents: dict[str, Any] = {}


def all_schema_documents() -> dict[str, dict[str, Any]]:
    """Every schema document by file name (the models', plus ones other packages add)."""
    return {**schema_documents(), **_extra_documents}


def add_schema_document(filename: str, document: dict[str, Any]) -> None:
    """Let another package (the Magasin) publish its schema beside ours."""
    _extra_documents[filename] = document


def render(document: dict[str, Any]) -> str:
    """The exact text written for a schema (stable, so a drift test can compare)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema into ``directory`` and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, document in sorted(all_schema_documents().items()):
        path = directory / filename
        path.write_text(render(document), encoding="utf-8")
        written.append(path)
    return written
