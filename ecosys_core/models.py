"""Pydantic models of what people publish: grapins (``GrapinConfig``) and tout-en-un apps (``ToutEnUnConfig``).

Both read the seed's PascalCase JSON. Paths use ``/`` whatever the platform; placeholders are
``%name%`` tokens, only allowed when ``NeedsFormat`` is true and only for names some plugin registered.
The set of known names is passed as validation context ``{"placeholders": {...}}``; without it the
builtin ones are assumed.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

PLATFORMS: tuple[str, ...] = ("Linux", "Win32", "Android", "Darwin")
# The seed's tout-en-un comment spells Windows; it means Win32.
_PLATFORM_ALIASES = {"Windows": "Win32", "windows": "Win32", "linux": "Linux", "android": "Android", "darwin": "Darwin"}
BUILTIN_PLACEHOLDERS: frozenset[str] = frozenset({"username", "version", "any"})
PLACEHOLDER_RE = re.compile(r"%([A-Za-z_][A-Za-z0-9_]*)%")
_DRIVE_RE = re.compile(r"^[A-Za-z]:$")


def placeholders_in(text: str) -> list[str]:
    """Return the placeholder names used in ``text``, in order of appearance."""
    return PLACEHOLDER_RE.findall(text)


def is_anchored(path: str) -> bool:
    """True when a ``/``-separated path starts at a root: ``~``, ``/`` or a drive letter like ``C:``."""
    first = path.split("/", 1)[0]
    return path.startswith("/") or first == "~" or bool(_DRIVE_RE.match(first))


def check_json_path(path: str, *, needs_format: bool, known: Iterable[str], anchored: bool | None) -> str:
    """Validate a path written in a grapin or app JSON and return it unchanged.

    ``anchored`` True requires a root (``~/``, ``/``, ``C:/``), False forbids one, None allows both.
    Raises ValueError with a message a person understands.
    """
    if not path:
        raise ValueError("must not be empty")
    if "\\" in path:
        raise ValueError(f"use '/' as the path separator, not '\\' (in {path!r})")
    if "\x00" in path:
        raise ValueError("must not contain a NUL character")
    if anchored is True and not is_anchored(path):
        raise ValueError(f"must start with '~/', '/' or a drive letter like 'C:/' (got {path!r})")
    if anchored is False and is_anchored(path):
        raise ValueError(f"must be relative to the app's root, not absolute (got {path!r})")
    parts = path.split("/")
    body = parts[1:] if path.startswith("/") else parts
    for part in body:
        if part == "..":
            raise ValueError(f"path component '..' is not allowed (in {path!r})")
        if part == "" and part is not body[-1]:
            raise ValueError(f"empty path component ('//') in {path!r}")
    known_set = set(known)
    for name in placeholders_in(path):
        if not needs_format:
            raise ValueError(f"uses %{name}% but NeedsFormat is false")
        if name not in known_set:
            raise ValueError(f"unknown placeholder %{name}% (known: {', '.join('%' + k + '%' for k in sorted(known_set))})")
    return path


def _known_placeholders(info: ValidationInfo) -> Iterable[str]:
    context = info.context or {}
    return context.get("placeholders", BUILTIN_PLACEHOLDERS)


def _check_name(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be empty")
    if any(c in value for c in "/\\\x00") or value in {".", ".."}:
        raise ValueError(f"must not contain '/', '\\' or NUL, nor be '.' or '..' (got {value!r})")
    return value


def _check_platforms(values: list[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        value = _PLATFORM_ALIASES.get(value, value)
        if value not in PLATFORMS:
            raise ValueError(f"unknown platform {value!r} (expected one of {', '.join(PLATFORMS)})")
        if value not in out:
            out.append(value)
    if not out:
        raise ValueError("must list at least one platform")
    return out


class _SeedModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", str_strip_whitespace=False, frozen=True)

    def to_json_dict(self) -> dict[str, Any]:
        """Return the seed-style PascalCase dict of this model (defaults included)."""
        return self.model_dump(by_alias=True, mode="json")

    @field_validator("app_name", check_fields=False)
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("supported_platforms", check_fields=False)
    @classmethod
    def _platforms(cls, value: list[str]) -> list[str]:
        return _check_platforms(value)


class GrapinConfig(_SeedModel):
    """A grapin: where one existing app keeps the data that should sync, per platform."""

    app_name: str = Field(alias="AppName", description="Unique name of the app, also the grapin's name.")
    needs_format: bool = Field(False, alias="NeedsFormat", description="True when the path holds %placeholders%.")
    app_sync_data_folder_path: str = Field(
        alias="AppSyncDataFolderPath",
        description="Folder to sync, '/'-separated, starting with '~/', '/' or a drive letter.",
    )
    supported_platforms: list[str] = Field(alias="SupportedPlatforms", description="Linux, Win32, Android, Darwin.")
    app_description: str = Field("", alias="AppDescription")
    app_icon_url: str = Field("", alias="AppIconURL")
    platform_paths: dict[str, str] = Field(
        default_factory=dict,
        alias="AppSyncDataFolderPathByPlatform",
        description="Ecosys extension: a per-platform path that overrides AppSyncDataFolderPath.",
    )


    @field_validator("app_sync_data_folder_path")
    @classmethod
    def _path(cls, value: str, info: ValidationInfo) -> str:
        needs_format = bool(info.data.get("needs_format", False))
        return check_json_path(value, needs_format=needs_format, known=_known_placeholders(info), anchored=True)

    @field_validator("platform_paths")
    @classmethod
    def _platform_paths(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        needs_format = bool(info.data.get("needs_format", False))
        out: dict[str, str] = {}
        for platform, path in value.items():
            (platform,) = _check_platforms([platform])
            out[platform] = check_json_path(path, needs_format=needs_format, known=_known_placeholders(info), anchored=True)
        return out

    @model_validator(mode="after")
    def _overrides_are_supported(self) -> "GrapinConfig":
        extra = sorted(set(self.platform_paths) - set(self.supported_platforms))
        if extra:
            raise ValueError(f"AppSyncDataFolderPathByPlatform names {', '.join(extra)}, absent from SupportedPlatforms")
        return self

    @property
    def name(self) -> str:
        return self.app_name

    def path_for(self, platform: str) -> str:
        """Return the JSON path to use on ``platform`` (the per-platform override, else the default)."""
        return self.platform_paths.get(platform, self.app_sync_data_folder_path)


class ToutEnUnConfig(_SeedModel):
    """A tout-en-un app: installed under ``ECOSYS_HOME/apps/<AppName>``, its sync folder relative to that root."""

    app_name: str = Field(alias="AppName")
    app_download_url: str = Field("", alias="AppDownloadUrl", description="Where the artifact is downloaded from.")
    needs_installer: bool = Field(False, alias="NeedsInstaller")
    app_executable_name: str = Field("", alias="AppExecutableName", description="Defaults to AppName with '_' for spaces.")
    app_installer_path: str = Field("", alias="AppInstallerPath")
    app_uninstaller_path: str = Field("", alias="AppUninstallerPath")
    app_sync_data_folder_path: str = Field(alias="AppSyncDataFolderPath", description="Relative to the app's root.")
    app_description: str = Field("", alias="AppDescription")
    app_icon_url: str = Field("", alias="AppIconURL")
    supported_platforms: list[str] = Field(alias="SupportedPlatforms")
    needs_format: bool = Field(False, alias="NeedsFormat")
    app_version: str = Field("0", alias="AppVersion", description="Ecosys extension: the app's version.")


    @field_validator("app_sync_data_folder_path")
    @classmethod
    def _sync_path(cls, value: str, info: ValidationInfo) -> str:
        return check_json_path(value, needs_format=False, known=(), anchored=False)

    @field_validator("app_executable_name", "app_installer_path", "app_uninstaller_path")
    @classmethod
    def _app_paths(cls, value: str) -> str:
        # Non-portable apps may name absolute executables (seed); '..' and '\' stay forbidden.
        return check_json_path(value, needs_format=False, known=(), anchored=None) if value else value

    @model_validator(mode="after")
    def _installer_named(self) -> "ToutEnUnConfig":
        if self.needs_installer and not self.app_installer_path:
            raise ValueError("NeedsInstaller is true but AppInstallerPath is empty")
        return self

    @property
    def name(self) -> str:
        return self.app_name

    @property
    def executable(self) -> str:
        """The executable path relative to the app root (the seed's default when none is given)."""
        return self.app_executable_name or self.app_name.replace(" ", "_")


def schema_documents() -> dict[str, dict[str, Any]]:
    """Return the JSON Schema documents kept in ``schemas/``, keyed by file name."""
    docs: dict[str, dict[str, Any]] = {}
    for filename, model in (("grapin.schema.json", GrapinConfig), ("toutenun.schema.json", ToutEnUnConfig)):
        schema = model.model_json_schema(by_alias=True, mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://ecosys.invalid/schemas/{filename}"
        docs[filename] = schema
    return docs
