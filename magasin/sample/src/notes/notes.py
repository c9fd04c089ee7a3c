#!/usr/bin/env python3
"""Notes, a tout-en-un app: Ecosys starts it with the app root as current folder, and syncs ./data.

    notes.py add TEXT...   write a new note
    notes.py list          print every note, oldest first
"""

import os
import sys
import tempfile
import time
from pathlib import Path

DATA = Path("data")


def add(text: str) -> None:
    DATA.mkdir(exist_ok=True)
    name = time.strftime("%Y%m%d-%H%M%S") + f"-{time.time_ns() % 1_000_000:06d}.txt"
    fd, tmp = tempfile.mkstemp(dir=DATA, prefix=".note-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.replace(tmp, DATA / name)
    print(f"saved {DATA / name}")


def show() -> None:
    notes = sorted(DATA.glob("*.txt")) if DATA.is_dir() else []
    if not notes:
        print("no notes yet")
    for note in notes:
        print(f"{note.stem}: {note.read_text(encoding='utf-8').strip()}")


if __name__ == "__main__":
    args = sys.argv[1:] or ["list"]
    if args[0] == "add" and len(args) > 1:
        add(" ".join(args[1:]))
    elif args[0] == "list":
        show()
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
