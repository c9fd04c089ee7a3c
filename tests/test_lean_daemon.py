"""A running daemon's memory starts with what it imports (issue 17: ≤ 1.25× Syncthing's RSS). Packages
needed only now and then are imported when they are needed: the Magasin's HTTP client (httpx, and
rich through it), cryptography (only to create an identity), zeroconf (only with mDNS on), and pydantic
with the grapin and app models (only when a grapin file or an app manifest is read: 7 MiB). This builds
a real daemon in a fresh process and checks none of them was loaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.net.daemons import init_home

OCCASIONAL = ("httpx", "rich", "cryptography", "zeroconf", "pydantic", "pydantic_core")

BUILD = """
import json, sys
from ecosys_core.daemon import Node
from ecosys_core.settings import layout
node = Node(layout(sys.argv[1]), port=0, host="127.0.0.1", mdns=False, gui_address=None)
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} | set(sys.modules))))
"""


def test_a_daemon_without_mdns_loads_no_occasional_package(tmp_path: Path):
    init_home(tmp_path / "home", "lean")  # the identity exists, as on every start but the first
    done = subprocess.run([sys.executable, "-c", BUILD, str(tmp_path / "home")], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout))
    assert "sqlalchemy" in loaded and "ecosys_core" in loaded  # the daemon was really built
    assert not loaded & set(OCCASIONAL), f"imported at start: {sorted(loaded & set(OCCASIONAL))}"
    assert "ecosys_core.models" not in loaded
