"""Unpack zip and tar archives from strangers without letting any member land outside the destination.

Everything is first unpacked into a staging folder beside the destination and only moved into place when
every member passed, so a hostile archive aborts with UnsafePath and leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from .errors import EcosysError, UnsafePath
from .safe_paths import check_relative_path


def _check_member(name: str, archive: Path) -> str:
    try:
        return check_relative_path(name.rstrip("/"))
    except UnsafePath as exc:
        raise UnsafePath(f"{archive.name}: refused member {name!r}: {exc}") from None


def _unpack_zip(archive: Path, staging: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:
            _check_member(info.filename, archive)
            mode = info.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise UnsafePath(f"{archive.name}: refused member {info.filename!r}: symbolic links are not allowed")
        for info in members:
            target = staging.joinpath(*PurePosixPath(info.filename.rstrip("/")).parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            mode = (info.external_attr >> 16) & 0o777
            if mode & 0o111:
                target.chmod(0o755)


def _unpack_tar(archive: Path, staging: Path) -> None:
    with tarfile.open(archive, "r:*") as tf:
        for member in tf.getmembers():
            _check_member(member.name, archive)
            if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
                raise UnsafePath(f"{archive.name}: refused member {member.name!r}: device files and fifos are not allowed")
            if member.issym() or member.islnk():
                link_base = PurePosixPath(member.name).parent if member.issym() else PurePosixPath()
                try:
                    check_relative_path(str(link_base / member.linkname))
                except UnsafePath:
                    raise UnsafePath(f"{archive.name}: refused member {member.name!r}: link points outside") from None
        try:
            tf.extractall(staging, filter="data")
        except tarfile.FilterError as exc:
            raise UnsafePath(f"{archive.name}: refused: {exc}") from None


def unpack_archive(archive: Path, destination: Path, kind: str) -> list[str]:
    """Unpack ``archive`` (``zip`` or ``tar.gz``/``tar``) into ``destination``; return the created paths.

    Raises UnsafePath for a member escaping the destination (``..``, absolute, drive letter, links out,
    device files) and EcosysError for a corrupt archive; either way nothing is left behind.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{destination.name}.unpack-", dir=destination.parent))
    try:
        try:
            if kind == "zip":
                _unpack_zip(archive, staging)
            else:
                _unpack_tar(archive, staging)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
            if isinstance(exc, tarfile.FilterError):
                raise
            raise EcosysError(f"{archive.name}: not a valid {kind} archive: {exc}") from None
        return _move_into(staging, destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into(staging: Path, destination: Path) -> list[str]:
    created: list[str] = []
    destination.mkdir(parents=True, exist_ok=True)
    for folder, dirs, files in os.walk(staging):
        rel = Path(folder).relative_to(staging)
        (destination / rel).mkdir(exist_ok=True)
        for name in sorted(files):
            os.replace(Path(folder) / name, destination / rel / name)
            created.append((rel / name).as_posix())
        for name in dirs:
            src = Path(folder) / name
            if src.is_symlink():  # a link os.walk will not descend: move it as an entry
                os.replace(src, destination / rel / name)
                created.append((rel / name).as_posix())
    return sorted(created)
