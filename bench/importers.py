"""Importing other tools' definitions: Ludusavi's manifest streamed, Mackup's applications, and listing
the apps found here among thousands of grapins.

    python bench/importers.py --json [--games 20000] [--manifest FILE] [--mackup DIR]

Without ``--manifest`` a synthetic manifest is written first, shaped like Ludusavi's (a mapping of games,
each with a few ``files`` entries using its placeholders and ``when`` constraints, some registry keys,
installDir and store ids; about 17 MB for 20,000 games). ``--mackup`` takes a Mackup ``applications``
folder (``pip download mackup`` and unzip it: the definitions are GPL and never shipped here).
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from _common import parser, peak_rss_mib, report, timed

from ecosys_core.importers.common import write_import
from ecosys_core.importers.ludusavi import import_ludusavi
from ecosys_core.importers.mackup import import_mackup

PATHS = ["<winAppData>/{g}/Saves", "<winDocuments>/My Games/{g}", "<winLocalAppData>/{g}/Saved/SaveGames/*.sav",
         "<base>/save", "<home>/.local/share/{g}", "<xdgData>/{g}/saves", "<xdgConfig>/{g}",
         "<home>/Library/Application Support/{g}", "<winLocalAppDataLow>/{g}/{g}",
         "<winDocuments>/{g}/<storeUserId>/profile.dat", "<root>/userdata/<storeUserId>/12345/remote"]
OS = ["windows", "linux", "mac"]


def synthetic_manifest(path: Path, games: int) -> None:
    """A manifest of ``games`` made-up games in Ludusavi's shape (seeded, so runs compare)."""
    rng = random.Random(1)
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(games):
            name = f"Game {i} {'Remastered' if i % 7 == 0 else 'Edition'}"
            fh.write(f"{json.dumps(name)}:\n  files:\n")
            for template in rng.sample(PATHS, rng.randint(1, 4)):
                fh.write(f"    {json.dumps(template.format(g=f'Studio{i % 97}/Game{i}'))}:\n      tags:\n        - save\n")
                if rng.random() < 0.7:
                    fh.write(f"      when:\n        - os: {rng.choice(OS)}\n")
                    if rng.random() < 0.3:
                        fh.write("          store: steam\n")
            if rng.random() < 0.4:
                fh.write(f"  registry:\n    HKEY_CURRENT_USER/Software/Studio{i % 97}/Game{i}:\n      tags:\n        - config\n")
            fh.write(f"  installDir:\n    Game{i}: {{}}\n  steam:\n    id: {100000 + i}\n")
            fh.write("  notes:\n    - message: |-\n        Saves are kept in the cloud as well; see the wiki page for details.\n")


def main() -> None:
    p = parser(__doc__)
    p.add_argument("--games", type=int, default=20_000)
    p.add_argument("--manifest", type=Path)
    p.add_argument("--mackup", type=Path)
    args = p.parse_args()
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            manifest = Path(tmp) / "manifest.yaml"
            synthetic_manifest(manifest, args.games)
            results["synthetic"] = True
        results["manifest_mib"] = round(manifest.stat().st_size / 2**20, 1)
        rss_before = peak_rss_mib()
        with timed(results, "ludusavi_import_s"):
            imported = import_ludusavi(manifest)
        results["ludusavi_peak_rss_mib"] = peak_rss_mib()
        results["rss_before_mib"] = rss_before
        results.update({f"ludusavi_{k}": imported.count(k) for k in ("imported", "widened", "skipped")})
        results["ludusavi_windows"] = imported.usable_on("Win32")
        results["ludusavi_linux"] = imported.usable_on("Linux")
        plugins = Path(tmp) / "home" / "plugins"
        with timed(results, "ludusavi_write_s"):
            write_import(plugins, imported)
        del imported
        if args.mackup:
            with timed(results, "mackup_import_s"):
                mackup = import_mackup(args.mackup)
            results.update({f"mackup_{k}": mackup.count(k) for k in ("imported", "widened", "skipped")})
            results["mackup_linux"], results["mackup_macos"] = mackup.usable_on("Linux"), mackup.usable_on("Darwin")
            write_import(plugins, mackup)
        results.update(list_here(Path(tmp) / "home"))
    results["peak_rss_mib"] = peak_rss_mib()
    report(results, args.json)


def list_here(home: Path) -> dict:
    """Time loading every grapin (bundled and imported) and finding those whose data is here."""
    from ecosys_core.plugins import get_plugin_manager
    from ecosys_core.resolve import current_context, resolve_grapin, surely_absent
    from ecosys_core.settings import HomeLayout

    start = time.perf_counter()
    plugins = get_plugin_manager(HomeLayout(home).ensure())
    grapins = plugins.grapins()
    loaded = time.perf_counter() - start
    placeholders = plugins.placeholders()
    context = current_context()
    here = 0
    for entry in grapins:  # what 'ecosys grapin list --here' does
        if not entry.checked and entry.raw is not None and surely_absent(entry.raw, context):
            continue
        try:
            resolve_grapin(entry.item, placeholders)
            here += 1
        except Exception:
            pass
    return {"grapins_loaded": len(grapins), "load_s": round(loaded, 3),
            "list_here_s": round(time.perf_counter() - start, 3), "found_here": here}


if __name__ == "__main__":
    main()
