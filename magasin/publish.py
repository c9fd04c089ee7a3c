"""Build a Magasin folder (index + artifacts) from app folders and grapin files.

Source layout: any folder below SRC holding an ``ecosys-app.json`` (a ToutEnUnConfig) is an app; its
files become a zip artifact, unless ``AppDownloadUrl`` names a prebuilt file inside the folder
(``.zip``, ``.tar.gz``/``.tgz``, anything else is an ``executable``). ``*.json`` files under a
``grapins/`` folder are grapins. Publishing into an existing Magasin keeps the other versions.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path

from ecosys_core.config_files import load_model_file
from ecosys_core.defaults.installed_apps import APP_MANIFEST
from ecosys_core.errors import ConfigError, EcosysError
from ecosys_core.hashing import sha256_file
from ecosys_core.models import GrapinConfig, ToutEnUnConfig
from ecosys_core.safe_paths import check_relative_path

from .index import (
    FORMAT_VERSION,
    INDEX_NAME,
    AppEntry,
    AppVersion,
    Artifact,
    MagasinIndex,
)

_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same sources give the same artifact bytes


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"


def _zip_folder(folder: Path, target: Path) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_dir() or rel == APP_MANIFEST or "__pycache__" in rel or path.is_symlink():
                continue
            info = zipfile.ZipInfo(rel, _ZIP_DATE)
            info.external_attr = (0o755 if os.access(path, os.X_OK) else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, path.read_bytes())


def _artifact_type(name: str) -> str:
    if name.endswith(".zip"):
        return "zip"
    if name.endswith((".tar.gz", ".tgz")):
        return "tar.gz"
    return "executable"


def _existing(out_dir: Path) -> MagasinIndex | None:
    path = out_dir / INDEX_NAME
    if not path.exists():
        return None
    return load_model_file(MagasinIndex, path)


def publish(src_dir: Path, out_dir: Path, *, name: str | None = None) -> MagasinIndex:
    """Build or update the Magasin in ``out_dir`` from ``src_dir``; return the written index."""
    if not src_dir.is_dir():
        raise EcosysError(f"{src_dir} is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "artifacts").mkdir(exist_ok=True)
    previous = _existing(out_dir)
    apps: dict[str, AppEntry] = {a.app_name: a for a in previous.apps} if previous else {}
    grapins: dict[str, GrapinConfig] = {g.app_name: g for g in previous.grapins} if previous else {}
    for manifest in sorted(src_dir.rglob(APP_MANIFEST)):
        config = load_model_file(ToutEnUnConfig, manifest)
        version = _publish_app(config, manifest.parent, out_dir)
        old = apps.get(config.app_name)
        others = [v for v in old.versions if v.version != version.version] if old else []
        apps[config.app_name] = AppEntry(AppName=config.app_name, AppDescription=config.app_description,
                                         AppIconURL=config.app_icon_url, Versions=[*others, version])
    for path in sorted(src_dir.rglob("grapins/*.json")):
        grapin = load_model_file(GrapinConfig, path)
        grapins[grapin.app_name] = grapin
    index = MagasinIndex(FormatVersion=FORMAT_VERSION, Name=name or (previous.name if previous else "Magasin"),
                         Apps=sorted(apps.values(), key=lambda a: a.app_name.casefold()),
                         Grapins=sorted(grapins.values(), key=lambda g: g.app_name.casefold()))
    fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=".index-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(index.to_json(), fh, indent=2, ensure_ascii=False)
        fh.write("\n")
    os.chmod(tmp, 0o644)  # served as is: readable by the web server
    os.replace(tmp, out_dir / INDEX_NAME)
    return index


def _publish_app(config: ToutEnUnConfig, folder: Path, out_dir: Path) -> AppVersion:
    prebuilt = config.app_download_url
    base = f"{slug(config.app_name)}-{slug(config.app_version)}"
    if prebuilt and "://" not in prebuilt:
        try:
            check_relative_path(prebuilt)
        except EcosysError as exc:
            raise ConfigError(str(folder / APP_MANIFEST), "AppDownloadUrl", str(exc)) from None
        source = folder / prebuilt
        if not source.is_file():
            raise ConfigError(str(folder / APP_MANIFEST), "AppDownloadUrl", f"{prebuilt} is not a file of the app folder")
        kind = _artifact_type(source.name)
        # An executable keeps its own name (it is installed under it), in a folder per version.
        target = out_dir / "artifacts" / base / source.name
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
    else:
        kind = "zip"
        target = out_dir / "artifacts" / f"{base}.zip"
        _zip_folder(folder, target)
    artifact = Artifact(Platforms=config.supported_platforms, Type=kind,
                        Url=target.relative_to(out_dir).as_posix(),
                        Size=target.stat().st_size, Sha256=sha256_file(target))
    return AppVersion(Version=config.app_version, Config=config, Artifacts=[artifact])
