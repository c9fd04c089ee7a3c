"""Member lists and introducers with real daemons on 127.0.0.1 (issue 15): four devices, each new one
linked once to an introducer; a task shared with everyone in one command; changes carried by any member
while others are away, in a seeded random order; a removal that no member undoes."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from ecosys_core.prompts import Prompts

from .daemons import Daemon, in_thread, tree, wait_until


@pytest.fixture
def four(tmp_path: Path):
    devices = [Daemon(tmp_path, n) for n in ("alpha", "beta", "gamma", "delta")]
    try:
        yield devices
    finally:
        for d in devices:
            d.stop()


def linked_ids(d: Daemon) -> set[str]:
    return {row["device_id"] for row in d.call("status")["devices"] if row["linked"]}


def members(d: Daemon, task: str = "docs") -> dict[str, dict]:
    rows = json.loads(d.cli("task", "list", "--json").stdout)
    return {m["device_id"]: m for t in rows if t["name"] == task for m in t["members"]}


def test_introduced_devices_share_through_any_member_and_a_removal_stands(four, tmp_path: Path):
    a, b, c, d = four
    for x in four:
        x.start()
    # each new device is linked once, to alpha, which it takes as introducer: no other question anywhere
    for new in (b, c, d):
        new.peers = [f"127.0.0.1:{a.port}"]
        wait_until(lambda: new.call("connect", address=f"127.0.0.1:{a.port}"), 20, what="a connection")
        thread, box = in_thread(lambda: new.call("link", timeout=40, device=a.id, timeout_s=30, introducer=True))
        a.answer("LINK", "yes")
        thread.join(45)
        assert "error" not in box, box.get("error")
    everyone = {x.id for x in four}
    for x in four:
        wait_until(lambda: linked_ids(x) == everyone - {x.id}, 30, what=f"{x.name} linked with all the others")
        # A LINK that reached a device just before the introduction naming its sender is withdrawn by
        # itself once the link exists (looked for every 0.2 s): nobody has to answer anything. Seen under
        # the suite's load (stop 27), right between the link and this check; a question that stays fails.
        wait_until(lambda: Prompts(x.home / "prompts").pending() == [], 5, what=f"{x.name}'s questions withdrawn")

    # one command shares the task with every linked device
    (a.root / "start.txt").write_text("from alpha\n")
    assert a.cli("task", "add", str(a.root), "--name", "docs").returncode == 0
    a.call("reload")
    thread, box = in_thread(lambda: a.cli("task", "share", "docs", "--all", "--timeout", "30", timeout=60))
    for x in (b, c, d):
        x.answer("CHOOSELINKPATH", str(x.root))
    thread.join(70)
    assert box["result"].returncode == 0, box["result"].stderr
    wait_until(lambda: all(tree(x.root) == tree(a.root) for x in four), 60, what="initial sync everywhere")
    for x in four:  # every member knows every other, and each other device is a member syncing here
        wait_until(lambda: {i for i, m in members(x).items() if m["state"] in ("member", "this device")}
                   == everyone, 30, what=f"{x.name}'s member list")

    # the case: alpha (which shared the task) is away, an edit on beta still reaches the others
    a.stop()
    (b.root / "while-alpha-away.txt").write_text("beta\n")
    wait_until(lambda: (c.root / "while-alpha-away.txt").exists() and (d.root / "while-alpha-away.txt").exists(),
               20, what="beta → gamma, delta without alpha")
    a.start()

    # devices meet in a random (seeded) order: one away, an edit elsewhere, it comes back
    rng = random.Random(15)
    for round_ in range(3):
        away, editor = rng.sample(four, 2)
        away.stop()
        (editor.root / f"round{round_}.txt").write_text(f"{editor.name} {round_}\n")
        live = [x for x in four if x is not away]
        wait_until(lambda: all(tree(x.root) == tree(editor.root) for x in live), 30, what=f"round {round_}")
        away.start()
    wait_until(lambda: all(tree(x.root) == tree(a.root) for x in four), 40, what="everyone after the rounds")

    # beta removes delta; gamma's next edit reaches alpha and beta, never delta, and nothing waits for it
    result = b.cli("task", "unshare", "docs", "--with", d.id)
    assert result.returncode == 0, result.stderr
    for x in (a, b, c):
        wait_until(lambda: members(x)[d.id]["state"] == "removed", 20, what=f"{x.name} learns the removal")
    wait_until(lambda: members(d)[d.id]["state"] == "removed", 20, what="delta learns it was removed")
    (c.root / "after-removal.txt").write_text("not for delta\n")
    wait_until(lambda: (a.root / "after-removal.txt").exists() and (b.root / "after-removal.txt").exists(), 20,
               what="gamma → alpha, beta")
    for x in (a, b, c):
        assert members(x)[d.id]["pending"] == 0
    # alpha, delta's introducer, meets everyone again: delta stays out
    a.stop()
    a.start()
    (a.root / "after-restart.txt").write_text("still not for delta\n")
    wait_until(lambda: all((x.root / "after-restart.txt").exists() for x in (b, c)), 60, what="after the restart")
    assert not (d.root / "after-removal.txt").exists() and not (d.root / "after-restart.txt").exists()
    assert members(a)[d.id]["state"] == "removed"
