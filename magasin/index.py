"""The Magasin index (``magasin_database.json``): apps with their versions and per-platform artifacts,
and grapins. A Magasin is a static folder: this file plus the artifacts, served by any web server."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ecosys_core.models import GrapinConfig, ToutEnUnConfig
from ecosys_core.resolve import natural_version_key
from ecosys_core.safe_paths import check_relative_path

INDEX_NAME = "magasin_database.json"
FORMAT_VERSION = 1


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", frozen=True)


class Artifact(_Model):
    """One downloadable file of an app version."""

    platforms: list[str] = Field(alias="Platforms", description="Platforms this artifact installs on.")
    type: str = Field(alias="Type", description="zip, tar.gz, executable, or a type a plugin installs.")
    url: str = Field(alias="Url", description="Relative to the index, or absolute.")
    size: int = Field(alias="Size", ge=0)
    sha256: str = Field(alias="Sha256", pattern=r"^[0-9a-f]{64}$")


class AppVersion(_Model):
    """One published version of a tout-en-un app."""

    version: str = Field(alias="Version", min_length=1)
    config: ToutEnUnConfig = Field(alias="Config")
    artifacts: list[Artifact] = Field(alias="Artifacts", min_length=1)

    def artifact_for(self, platform: str) -> Artifact | None:
        """The artifact that installs on ``platform``, if any."""
        return next((a for a in self.artifacts if platform in a.platforms), None)


class AppEntry(_Model):
    """An app and all its published versions."""

    app_name: str = Field(alias="AppName", min_length=1)
    app_description: str = Field("", alias="AppDescription")
    app_icon_url: str = Field("", alias="AppIconURL")
    versions: list[AppVersion] = Field(alias="Versions", min_length=1)

    def latest(self) -> AppVersion:
        """The highest version by natural version order."""
        return max(self.versions, key=lambda v: natural_version_key(v.version))

    def version(self, wanted: str) -> AppVersion | None:
        return next((v for v in self.versions if v.version == wanted), None)


class MagasinIndex(_Model):
    """The whole index file."""

    format_version: int = Field(alias="FormatVersion")
    name: str = Field("Magasin", alias="Name")
    apps: list[AppEntry] = Field(default_factory=list, alias="Apps")
    grapins: list[GrapinConfig] = Field(default_factory=list, alias="Grapins")

    @field_validator("format_version")
    @classmethod
    def _known_format(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise ValueError(f"format version {value} is not supported by this Ecosys (it reads {FORMAT_VERSION})")
        return value

    def find_app(self, name: str) -> AppEntry | None:
        folded = name.casefold()
        return next((a for a in self.apps if a.app_name.casefold() == folded), None)

    def find_grapin(self, name: str) -> GrapinConfig | None:
        folded = name.casefold()
        return next((g for g in self.grapins if g.app_name.casefold() == folded), None)

    def search(self, term: str) -> list[tuple[str, str, str]]:
        """(kind, name, description) of apps and grapins whose name or description holds ``term``."""
        t = term.casefold()
        hits = [("app", a.app_name, a.app_description) for a in self.apps
                if t in a.app_name.casefold() or t in a.app_description.casefold()]
        hits += [("grapin", g.app_name, g.app_description) for g in self.grapins
                 if t in g.app_name.casefold() or t in g.app_description.casefold()]
        return sorted(hits, key=lambda h: (h[1].casefold(), h[0]))

    def to_json(self) -> dict[str, Any]:
        """The index as its file holds it (grapins in their own shape: format 2 keys only when used)."""
        data = self.model_dump(by_alias=True, mode="json")
        data["Grapins"] = [g.to_json_dict() for g in self.grapins]
        return data


def relative_artifact_url(url: str) -> bool:
    """True for a URL relative to the index (checked to stay inside the Magasin folder)."""
    if "://" in url:
        return False
    check_relative_path(url)
    return True


def index_schema() -> dict[str, Any]:
    """The JSON Schema of the index, published in ``schemas/``."""
    schema = MagasinIndex.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://ecosys.invalid/schemas/magasin.schema.json"
    return schema
