"""schemas/ holds the JSON Schemas generated from the models; this fails when they drift."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from ecosys_core.resources import bundled_dir
from ecosys_core.schemas import all_schema_documents, render


def test_committed_schemas_match_the_models(plugins):
    folder = bundled_dir("schemas")
    documents = all_schema_documents(plugins.hook)
    assert "magasin.schema.json" in documents
    for filename, document in documents.items():
        path = folder / filename
        assert path.exists(), f"{filename} missing: run 'ecosys schemas export schemas'"
        assert path.read_text() == render(document), f"{filename} drifted: run 'ecosys schemas export schemas'"


def test_export_writes_every_schema(run_cli, tmp_path: Path, plugins):
    result = run_cli("schemas", "export", str(tmp_path / "out"))
    assert result.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(all_schema_documents(plugins.hook))


def test_bundled_grapins_validate_against_the_published_schema():
    schema = json.loads((bundled_dir("schemas") / "grapin.schema.json").read_text())
    for path in bundled_dir("plugins").glob("*.json"):
        jsonschema.validate(json.loads(path.read_text()), schema)
