"""Install artifacts of the builtin types: ``zip``, ``tar.gz`` (and ``tar``), and a plain ``executable``."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..archives import unpack_archive
from ..hookspecs import hookimpl
from ..safe_paths import portable_name

ARCHIVE_TYPES = {"zip": "zip", "tar.gz": "tar", "tgz": "tar", "tar": "tar"}


@hookimpl
def install_artifact(artifact: Path, artifact_type: str, destination: Path) -> list[str] | None:
    if artifact_type in ARCHIVE_TYPES:
        return unpack_archive(artifact, destination, ARCHIVE_TYPES[artifact_type])
    if artifact_type == "executable":
        destination.mkdir(parents=True, exist_ok=True)
        name = portable_name(artifact.name)
        target = destination / name
        shutil.copyfile(artifact, target)
        target.chmod(0o755)
        return [name]
    return None
