"""How fast the command line answers: ``ecosys --version`` alone, and ``status``, ``prompts`` and
``answer`` against a running daemon, each run N times as a person would type them (a new process each).

    python bench/cli.py --json [--calls 20]

Targets (issue 17): ``--version`` ≤ 0.15 s, the others ≤ 0.3 s wall.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import parser, report

from ecosys_core.prompts import Prompts


def run(home: Path, *args: str) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ecosys_core", "--home", str(home), *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "0"})
    elapsed = time.perf_counter() - start
    if done.returncode != 0 and args[0] != "answer":
        raise SystemExit(f"ecosys {' '.join(args)} failed: {done.stderr}")
    return elapsed


def figures(samples: list[float]) -> dict:
    return {"median_s": round(statistics.median(samples), 3), "max_s": round(max(samples), 3)}


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--calls", type=int, default=20)
    args = p.parse_args()
    results: dict = {"calls": args.calls}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        subprocess.run([sys.executable, "-m", "ecosys_core", "--home", str(home), "init", "--name", "bench"],
                       check=True, capture_output=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        daemon = subprocess.Popen([sys.executable, "-m", "ecosys_core", "--home", str(home), "up", "--port", str(port),
                                   "--host", "127.0.0.1", "--no-mdns"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not (home / "daemon.json").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            run(home, "status")  # warm the file cache
            results["version"] = figures([run(home, "--version") for _ in range(args.calls)])
            results["status"] = figures([run(home, "status") for _ in range(args.calls)])
            results["prompts"] = figures([run(home, "prompts") for _ in range(args.calls)])
            prompts = Prompts(home / "prompts")
            answers = []
            for _ in range(args.calls):
                prompts.post("OTDL", "a bench question", timeout=600)
                answers.append(run(home, "answer", "OTDL", "no"))
            results["answer"] = figures(answers)
        finally:
            daemon.terminate()
            daemon.wait(15)
    report(results, args.json)


if __name__ == "__main__":
    main()
