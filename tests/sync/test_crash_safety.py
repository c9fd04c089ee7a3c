"""SIGKILL a device in the middle of applying large changes: after a restart and a rescan every file is
either its old or its new content, and sync then completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from ecosys_core.sync.fsio import is_temp_name

from .harness import SECURE_ID, make_devices, meet, reopen_devices

CHILD = Path(__file__).with_name("crash_child.py")
SIZE = 24 << 20


def test_sigkill_mid_apply_leaves_old_or_new_and_sync_completes(tmp_path: Path):
    a, b = make_devices(tmp_path, 2)
    old = {f"big{i}.bin": os.urandom(SIZE) for i in range(4)}
    for name, data in old.items():
        a.write(name, data)
    a.scan()
    meet(a, b)
    new = {name: os.urandom(SIZE) for name in old}  # whole rewrites: long applies
    for name, data in new.items():
        a.write(name, data)
    a.scan()
    a.close()
    b.close()

    child = subprocess.Popen([sys.executable, str(CHILD), str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        first = child.stdout.readline().strip()
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(30)
    assert first == "DONE", "the child should have applied one file before being killed"

    a, b = reopen_devices(tmp_path, 2)
    try:
        for name in old:
            content = (b.root / name).read_bytes()
            assert content in (old[name], new[name]), f"{name} is torn"
        assert sum((b.root / n).read_bytes() == new[n] for n in old) < len(old), "the kill came too late"
        b.scan()
        assert not [p for p in b.root.iterdir() if is_temp_name(p.name)], "temp files left after rescan"
        meet(a, b)
        assert b.files() == new
        assert not a.engine.pending_counts(SECURE_ID) and not b.engine.pending_counts(SECURE_ID)
    finally:
        a.close()
        b.close()
