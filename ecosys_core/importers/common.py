"""What an import made of each definition, and writing the result so that it replaces the previous
import of the same source in one step."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from ..config_files import validation_error_to_config_error
from ..sync.fsio import atomic_writer, commit_temp

IMPORTED_FILE = "grapins.json"
IMPORTED = "imported"
WIDENED = "widened"  # imported, but syncing more than the definition names (said in the reason)
SKIPPED = "skipped"


@dataclass(frozen=True)
class ImportRow:
    """One definition of the source and what became of it."""

    name: str
    outcome: str
    reason: str = ""
    platforms: tuple[str, ...] = ()


@dataclass
class ImportResult:
    """Every definition's row, and the grapins (JSON dicts) to write."""

    source: dict[str, Any]
    rows: list[ImportRow] = field(default_factory=list)
    grapins: list[dict[str, Any]] = field(default_factory=list)
    _names: set[str] = field(default_factory=set)

    def add(self, name: str, grapin: dict[str, Any] | None, reason: str = "", *, widened: bool = False) -> None:
        """Record ``grapin`` (None: skipped for ``reason``), after checking it as any grapin file is."""
        if grapin is None:
            self.rows.append(ImportRow(name, SKIPPED, reason))
            return
        app = grapin["AppName"]
        if app.casefold() in self._names:
            grapin = {**grapin, "AppName": f"{app} ({name})"}
        # an import run loads the models; the daemon, which reads this module, does not
        from pydantic import ValidationError

        from ..models import GrapinConfig

        try:
            checked = GrapinConfig.model_validate(grapin)
        except ValidationError as exc:
            self.rows.append(ImportRow(name, SKIPPED, str(validation_error_to_config_error(name, exc))))
            return
        self._names.add(checked.app_name.casefold())
        self.grapins.append(grapin)
        self.rows.append(ImportRow(name, WIDENED if widened else IMPORTED, reason,
                                   tuple(checked.supported_platforms)))

    def count(self, outcome: str) -> int:
        """How many definitions had ``outcome``."""
        return sum(1 for row in self.rows if row.outcome == outcome)

    def usable_on(self, platform: str) -> int:
        """How many imported grapins name a place on ``platform``."""
        return sum(1 for row in self.rows if row.outcome != SKIPPED and platform in row.platforms)


def imported_folder(plugins: Path, source: str) -> Path:
    """Where the grapins imported from ``source`` live: ``ECOSYS_HOME/plugins/imported-<source>/``."""
    return plugins / f"imported-{source}"


def write_import(plugins: Path, result: ImportResult) -> Path:
    """Write ``result`` as the import of its source, replacing the previous one at once (one file
    renamed over the other: a reader sees the old import or the new one, never a mix)."""
    folder = imported_folder(plugins, result.source["source"])
    folder.mkdir(parents=True, exist_ok=True)
    document = {**result.source, "imported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "grapins": result.grapins}
    target = folder / IMPORTED_FILE
    with atomic_writer(target) as (fh, temp):
        fh.write(json.dumps(document, indent=1, ensure_ascii=False).encode("utf-8"))
    commit_temp(temp, target)
    return target


def read_imported(path: Path) -> tuple[dict[str, Any], list[Any]]:
    """The source record and the grapin dicts of an import file; ValueError when it is not one."""
    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict) or not isinstance(document.get("grapins"), list):
        raise ValueError("expected an object with a 'grapins' list")
    return {k: v for k, v in document.items() if k != "grapins"}, document["grapins"]


def safe_part_name(path: str, taken: Iterable[str]) -> str:
    """A name for the grapin path ``path`` (a folder of the task: no '/'), unique among ``taken``."""
    base = re.sub(r'[*?\[\]<>:"|]', "_", path.strip("/").replace("/", "__")) or "root"
    if base in (".", ".."):
        base = base.replace(".", "dot")
    name, n = base, 2
    folded = {t.casefold() for t in taken}
    while name.casefold() in folded:
        name, n = f"{base}~{n}", n + 1
    return name


def outermost(paths: list[str]) -> list[str]:
    """``paths`` without those inside another of them (a folder's own files come with it)."""
    out: list[str] = []
    for path in sorted(set(paths), key=lambda p: (p.count("/"), p)):
        if not any(path.startswith(kept.rstrip("/") + "/") for kept in out):
            out.append(path)
    return [p for p in paths if p in out]


def uses_dotdot(path: str) -> bool:
    """True when ``path`` climbs out with ``..`` or is absolute (never imported)."""
    return path.startswith("/") or os.path.isabs(path) or ".." in path.replace("\\", "/").split("/")
