"""The sample Magasin shipped under magasin/sample: current with its sources, and the README's flow
works with no server at all (the default Magasin is the sample, read through a file: URL)."""

from __future__ import annotations

import json
from pathlib import Path

from magasin.cli import SAMPLE_STORE
from magasin.publish import publish

from ..conftest import run_ecosys
from .conftest import SAMPLE_SRC


def test_committed_sample_store_matches_its_sources(tmp_path: Path):
    publish(SAMPLE_SRC, tmp_path / "store", name="Ecosys sample Magasin")
    fresh = {p.relative_to(tmp_path / "store").as_posix(): p.read_bytes()
             for p in (tmp_path / "store").rglob("*") if p.is_file()}
    committed = {p.relative_to(SAMPLE_STORE).as_posix(): p.read_bytes() for p in SAMPLE_STORE.rglob("*") if p.is_file()}
    assert fresh == committed, "run: ecosys magasin publish magasin/sample/src magasin/sample/store --name 'Ecosys sample Magasin'"
    index = json.loads(committed["magasin_database.json"])
    assert len(index["Apps"]) >= 2 and len(index["Grapins"]) >= 3


def test_readme_flow_with_the_default_sample_magasin(tmp_path: Path):
    home = ["--home", str(tmp_path / "home")]
    env = {"ECOSYS_MAGASIN": ""}
    assert "Notes" in run_ecosys(*home, "magasin", "search", "notes", env=env).stdout
    installed = run_ecosys(*home, "magasin", "install", "Notes", env=env)
    assert installed.returncode == 0, installed.stderr
    assert run_ecosys(*home, "app", "run", "Notes", "add", "hello", env=env).returncode == 0
    listed = run_ecosys(*home, "app", "run", "Notes", "list", env=env)
    assert "hello" in listed.stdout
    tasks = json.loads(run_ecosys(*home, "task", "list", "--json", env=env).stdout)
    assert [t["name"] for t in tasks] == ["Notes (application)"]
