"""Run by test_crash_safety in a child process: device 1 pulls device 0's changes and says DONE after
each applied file, so the parent can SIGKILL it in the middle of the next one."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.sync.harness import meet, reopen_devices  # noqa: E402

a, b = reopen_devices(Path(sys.argv[1]), 2)
receive = b.engine.receive


def loud_receive(peer, message):
    answers = receive(peer, message)
    if any(x.flag == "MODIFICATION_DONE" for x in answers):
        print("DONE", flush=True)
    return answers


b.engine.receive = loud_receive
meet(a, b)
print("FINISHED", flush=True)
