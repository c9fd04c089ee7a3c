"""Pydantic models of what people publish: grapins (``GrapinConfig``) and tout-en-un apps (``ToutEnUnConfig``).

Both read the seed's PascalCase JSON. Paths use ``/`` whatever the platform; placeholders are
``%name%`` tokens, only allowed when ``NeedsFormat`` is true and only for names some plugin registered.
The set of known names is passed as validation context ``{"placeholders": {...}}``; without it the
builtin ones are assumed.
"""

from __future__ import annotations

from typing import Any, Iterable

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .grapin_paths import check_json_path

PLATFORMS: tuple[str, ...] = ("Linux", "Win32", "Android", "Darwin")
# The seed's tout-en-un comment spells Windows; it means Win32.
_PLATFORM_ALIASES = {"Windows": "Win32", "windows": "Win32", "linux": "Linux", "android": "Android", "darwin": "Darwin"}
BUILTIN_PLACEHOLDERS: frozenset[str] = frozenset({"username", "version", "any", "mozilla_profile"})
GRAPIN_FORMAT = 2  # the newest grapin format this Ecosys reads
FORMAT_SINCE = {1: "0.1.0", 2: "0.2.0"}  # the Ecosys version that first read each format
ANY_PLATFORM = "Any"


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


def _check_patterns(values: list[str]) -> list[str]:
    from pathspec.patterns.gitignore.spec import GitIgnoreSpecPattern

    for value in values:
        if not value or "\\" in value or "\x00" in value or ".." in value.split("/"):
            raise ValueError(f"{value!r}: a pattern is relative, uses '/', and has no '..'")
        try:
            GitIgnoreSpecPattern(value)
        except Exception as exc:  # pathspec's own error types: a bad pattern to the user
            raise ValueError(f"bad pattern {value!r}: {exc}") from None
    return values


class GrapinPath(_SeedModel):
    """Format 2: one thing an app keeps (a folder or a single file), where it is on each platform."""

    name: str = Field(alias="Name", description="Its folder in the task: the same on every device and platform.")
    locations: dict[str, list[str]] = Field(
        alias="Locations",
        description="Per platform (or 'Any'), the places to try in order; the first that exists is used. "
                    "Globs (*, ?, [..], **) match every entry they can, not the first.",
    )
    file: bool | None = Field(False, alias="File", description="A single file, such as ~/.vimrc (true), a "
                              "folder (false), or whichever is there (null: an imported definition that does not say).")
    include: list[str] = Field(default_factory=list, alias="Include",
                               description="Only these gitignore-style patterns sync (default: everything).")
    exclude: list[str] = Field(default_factory=list, alias="Exclude",
                               description="Gitignore-style patterns that never sync (caches, locks).")

    @field_validator("name")
    @classmethod
    def _part_name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("locations")
    @classmethod
    def _locations(cls, value: dict[str, list[str]], info: ValidationInfo) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for platform, paths in value.items():
            key = ANY_PLATFORM if platform == ANY_PLATFORM else _check_platforms([platform])[0]
            if not paths:
                raise ValueError(f"{platform}: list at least one location")
            out[key] = [check_json_path(path, needs_format=True, known=_known_placeholders(info), anchored=True)
                        for path in paths]
        if not out:
            raise ValueError("name at least one platform's locations")
        return out

    @field_validator("include", "exclude")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        return _check_patterns(value)

    def locations_for(self, platform: str) -> list[str]:
        """The places to try on ``platform``, in order (its own list, else the 'Any' one)."""
        return self.locations.get(platform) or self.locations.get(ANY_PLATFORM, [])


def check_format(data: Any, what: str = "grapin") -> None:
    """Raise ValueError naming the Ecosys version needed when ``data`` (a raw grapin dict) declares a
    ``FormatVersion`` this Ecosys does not read, before its keys are checked: a newer grapin says so,
    not "unknown key"."""
    if not isinstance(data, dict) or "FormatVersion" not in data:
        return
    version = data["FormatVersion"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"FormatVersion must be a whole number from 1 (got {version!r})")
    if version > GRAPIN_FORMAT:
        from . import __version__

        needed = data.get("MinEcosysVersion") or f"a version reading format {version}"
        raise ValueError(f"this {what} needs Ecosys >= {needed} (format {version}); this is Ecosys {__version__}, "
                         f"which reads formats up to {GRAPIN_FORMAT}")


class GrapinConfig(_SeedModel):
    """A grapin: where one existing app keeps the data that should sync, per platform.

    Format 1 (the seed) names one folder (``AppSyncDataFolderPath``); format 2 lists ``Paths``, several
    folders and files per app and platform with alternatives, globs, anchors and include/exclude
    patterns. Both read the same way through :meth:`paths_for`.
    """

    app_name: str = Field(alias="AppName", description="Unique name of the app, also the grapin's name.")
    needs_format: bool = Field(False, alias="NeedsFormat", description="True when the path holds %placeholders%.")
    format_version: int = Field(1, alias="FormatVersion", description="Grapin format: 1 (seed) or 2 (Paths).")
    min_ecosys_version: str = Field("", alias="MinEcosysVersion",
                                    description="The Ecosys version this grapin needs, said when an older one reads it.")
    app_sync_data_folder_path: str = Field(
        "",
        alias="AppSyncDataFolderPath",
        description="Folder to sync, '/'-separated, starting with '~/', '/' or a drive letter (format 1).",
    )
    supported_platforms: list[str] = Field(alias="SupportedPlatforms", description="Linux, Win32, Android, Darwin.")
    app_description: str = Field("", alias="AppDescription")
    app_icon_url: str = Field("", alias="AppIconURL")
    platform_paths: dict[str, str] = Field(
        default_factory=dict,
        alias="AppSyncDataFolderPathByPlatform",
        description="Ecosys extension: a per-platform path that overrides AppSyncDataFolderPath.",
    )
    paths: list[GrapinPath] = Field(default_factory=list, alias="Paths",
                                    description="Format 2: the folders and files to sync, each with its locations.")
    lock_files: list[str] = Field(default_factory=list, alias="LockFiles",
                                  description="Files (patterns relative to a path) present while the app runs.")
    process_names: list[str] = Field(default_factory=list, alias="ProcessNames",
                                     description="Names of the app's processes: while one runs, its data waits.")

    @model_validator(mode="before")
    @classmethod
    def _format_first(cls, data: Any) -> Any:
        check_format(data)
        return data


    @field_validator("app_sync_data_folder_path")
    @classmethod
    def _path(cls, value: str, info: ValidationInfo) -> str:
        if not value:
            return value  # format 2 may give Paths instead; checked once every field is read
        needs_format = bool(info.data.get("needs_format", False))
        return check_json_path(value, needs_format=needs_format, known=_known_placeholders(info), anchored=True)

    @field_validator("lock_files")
    @classmethod
    def _lock_patterns(cls, value: list[str]) -> list[str]:
        return _check_patterns(value)

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
        if self.paths and self.format_version < 2:
            raise ValueError("Paths needs \"FormatVersion\": 2")
        if not self.paths and not self.app_sync_data_folder_path:
            raise ValueError("give AppSyncDataFolderPath or (format 2) Paths")
        names = [p.name.casefold() for p in self.paths]
        if len(names) != len(set(names)):
            raise ValueError("two Paths have the same Name")
        for part in self.paths:
            extra = sorted(set(part.locations) - set(self.supported_platforms) - {ANY_PLATFORM})
            if extra:
                raise ValueError(f"Paths {part.name!r} names {', '.join(extra)}, absent from SupportedPlatforms")
        return self

    @property
    def name(self) -> str:
        return self.app_name

    def to_json_dict(self) -> dict[str, Any]:
        """The PascalCase dict of this grapin; format 2 keys only when used, so a seed grapin stays in
        the seed's shape (and older Ecosys versions read what this one publishes)."""
        data = super().to_json_dict()
        for key, empty in (("FormatVersion", 1), ("MinEcosysVersion", ""), ("Paths", []), ("LockFiles", []),
                           ("ProcessNames", [])):
            if data.get(key) == empty:
                data.pop(key)
        if self.paths and not data.get("AppSyncDataFolderPath"):
            data.pop("AppSyncDataFolderPath", None)
        return data

    def path_for(self, platform: str) -> str:
        """Return the JSON path to use on ``platform`` (the per-platform override, else the default);
        for a format 2 grapin, the first location of its first path there ("" if none)."""
        if self.paths:
            found = [loc for part in self.paths for loc in part.locations_for(platform)]
            return found[0] if found else ""
        return self.platform_paths.get(platform, self.app_sync_data_folder_path)

    def paths_for(self, platform: str) -> list[GrapinPath]:
        """What to sync on ``platform`` as format 2 paths (a format 1 grapin is one folder, "data")."""
        if self.paths:
            return [part for part in self.paths if part.locations_for(platform)]
        return [GrapinPath(Name="data", Locations={platform: [self.path_for(platform)]})]

    @property
    def single_folder(self) -> bool:
        """True when the grapin is one folder on every platform: its task's root is that folder. With
        several paths (or a file), each path is a folder of the task named after it."""
        return len(self.paths) <= 1 and not any(part.file is not False for part in self.paths)


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
