"""A real Magasin for the tests: apps published with ``publish`` and served over HTTP on 127.0.0.1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from magasin.publish import publish
from magasin.serve import make_server, serve_in_thread

SAMPLE_SRC = Path(__file__).resolve().parents[2] / "magasin" / "sample" / "src"


@pytest.fixture
def magasin_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(SAMPLE_SRC, src)
    return src


@pytest.fixture
def magasin_dir(tmp_path: Path, magasin_src: Path) -> Path:
    out = tmp_path / "magasin"
    publish(magasin_src, out, name="Test Magasin")
    return out


@pytest.fixture
def server(magasin_dir: Path):
    srv = make_server(magasin_dir, "127.0.0.1", 0, quiet=True)
    serve_in_thread(srv)
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def url(server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture
def mg(run_cli, url):
    """Run ``ecosys magasin …`` against the served Magasin."""

    def run(*args: str):
        return run_cli("magasin", "--magasin", url, *args)

    return run
