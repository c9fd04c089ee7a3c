"""Delta sizes and costs on a 128 MiB random file: a 100-byte overwrite in the middle and a 10-byte
insert near the start, encoded against the chunk signature and applied, streaming; plus the bsdiff4
calibration that sets BSDIFF_MAX (measured in a child process so its memory is not counted here).

    python bench/delta.py --json [--size-mib 128]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import parser, peak_rss_mib, report, timed, write_random

from ecosys_core.sync.chunking import digest_file
from ecosys_core.sync.delta import apply_delta, encode_against


def _variant(src: Path, dst: Path, *, offset: int, overwrite: bytes = b"", insert: bytes = b"") -> None:
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        left = offset
        while left:
            block = fin.read(min(left, 1 << 20))
            fout.write(block)
            left -= len(block)
        if insert:
            fout.write(insert)
        if overwrite:
            fout.write(overwrite)
            fin.seek(offset + len(overwrite))
        shutil.copyfileobj(fin, fout, 1 << 20)


def _measure(base: Path, new: Path, out: Path, results: dict, name: str) -> None:
    signature = digest_file(base, with_signature=True).signature
    start = time.perf_counter()
    delta = tempfile.TemporaryFile()
    size = 0
    with open(new, "rb") as fh:
        for block in encode_against(fh, signature):
            delta.write(block)
            size += len(block)
    results[f"{name}_bytes"] = size
    results[f"{name}_encode_s"] = round(time.perf_counter() - start, 3)
    delta.seek(0)
    expected = digest_file(new, with_signature=False)
    start = time.perf_counter()
    with open(out, "wb") as fh:
        got = apply_delta(iter(lambda: delta.read(1 << 20), b""), base, fh, expected_size=expected.size)
    results[f"{name}_apply_s"] = round(time.perf_counter() - start, 3)
    assert got == expected.hash, "delta did not rebuild the file"


def bsdiff_calibration() -> dict:
    import bsdiff4

    out = {}
    for kib in (256, 1024, 4096):
        old = os.urandom(kib << 10)
        new = old[:1000] + b"0123456789" + old[1000:]
        start = time.perf_counter()
        patch = bsdiff4.diff(old, new)
        out[f"bsdiff_{kib}k_s"] = round(time.perf_counter() - start, 3)
        out[f"bsdiff_{kib}k_bytes"] = len(patch)
    out["bsdiff_peak_rss_mib"] = peak_rss_mib()
    return out


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--size-mib", type=int, default=128)
    p.add_argument("--bsdiff-only", action="store_true", help=argparse_hidden())
    args = p.parse_args()
    if args.bsdiff_only:
        print(json.dumps(bsdiff_calibration()))
        return
    results: dict = {"file_mib": args.size_mib}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        base = t / "base.bin"
        write_random(base, args.size_mib << 20)
        with timed(results, "signature_s"):
            signature = digest_file(base, with_signature=True).signature
        results["signature_bytes"] = len(signature.to_bytes())
        _variant(base, t / "overwrite.bin", offset=(args.size_mib << 20) // 2, overwrite=os.urandom(100))
        _variant(base, t / "insert.bin", offset=1000, insert=os.urandom(10))
        _measure(base, t / "overwrite.bin", t / "out1.bin", results, "overwrite")
        _measure(base, t / "insert.bin", t / "out2.bin", results, "insert")
    results["peak_rss_mib"] = peak_rss_mib()
    child = subprocess.run([sys.executable, __file__, "--bsdiff-only"], capture_output=True, text=True, check=True)
    results.update(json.loads(child.stdout))
    report(results, args.json)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
