"""Catalogues of the grapins and tout-en-un apps that plugins registered, with their load errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Generic, Iterator, TypeVar

from .errors import ConfigError, NotFound

if TYPE_CHECKING:  # catalogues are built by the daemon, which reads no grapin file until asked
    from .models import GrapinConfig, ToutEnUnConfig

T = TypeVar("T")


class Registered(Generic[T]):
    """One registered item and where it came from (a file path or a plugin name).

    An item may be registered as its raw JSON with the function that checks it (thousands of imported
    grapins): it is checked when first used, so listing or searching them by name costs no validation.
    ``item`` then raises the ConfigError of a broken one."""

    def __init__(self, item: T | None, source: str, *, raw: dict[str, Any] | None = None,
                 parse: Callable[[], T] | None = None) -> None:
        self._item = item
        self.source = source
        self.raw = raw
        self._parse = parse

    @property
    def item(self) -> T:
        if self._item is None:
            assert self._parse is not None
            self._item = self._parse()
        return self._item

    @property
    def checked(self) -> bool:
        """True once the item was validated (always, for one registered as a model)."""
        return self._item is not None

    def text(self, key: str) -> str:
        """A text field (``AppName``, ``AppDescription``) without checking the item first."""
        if self.raw is not None and self._item is None:
            value = self.raw.get(key, "")
            return value if isinstance(value, str) else ""
        item: Any = self._item
        return {"AppName": getattr(item, "app_name", ""), "AppDescription": getattr(item, "app_description", "")
                }.get(key, "")


@dataclass
class _Registry(Generic[T]):
    known_placeholders: frozenset[str]
    entries: dict[str, Registered[T]] = field(default_factory=dict)
    errors: list[ConfigError] = field(default_factory=list)
    replaced: list[tuple[str, str]] = field(default_factory=list)

    def add_error(self, error: ConfigError) -> None:
        """Record a broken definition; the others still load."""
        self.errors.append(error)

    def get(self, name: str) -> Registered[T]:
        """Return the entry called ``name`` (case-insensitive fallback); raise NotFound."""
        if name in self.entries:
            return self.entries[name]
        folded = {key.casefold(): value for key, value in self.entries.items()}
        if name.casefold() in folded:
            return folded[name.casefold()]
        raise NotFound(f"no {self._kind} called {name!r} (see 'ecosys {self._kind} list')")

    def __iter__(self) -> Iterator[Registered[T]]:
        return iter(entry for _, entry in sorted(self.entries.items(), key=lambda kv: kv[0].casefold()))

    def __len__(self) -> int:
        return len(self.entries)

    def _store(self, name: str, registered: Registered[T]) -> None:
        if name in self.entries:
            self.replaced.append((name, self.entries[name].source))
        self.entries[name] = registered

    _kind = "item"

    @staticmethod
    def _name(item: T) -> str:
        return getattr(item, "app_name")


class GrapinRegistry(_Registry["GrapinConfig"]):
    """Passed to ``register_grapins``: ``add(grapin, source)`` and ``add_error(error)``."""

    _kind = "grapin"

    def add(self, grapin: GrapinConfig, source: str) -> None:
        """Register ``grapin``; a later grapin with the same AppName replaces it."""
        self._store(grapin.app_name, Registered(grapin, source))

    def add_unchecked(self, raw: dict[str, Any], source: str, parse: Callable[[], GrapinConfig]) -> None:
        """Register a grapin as its raw JSON, checked by ``parse`` when first used (see
        :class:`Registered`); one without a text AppName is recorded as an error now."""
        name = raw.get("AppName") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name.strip():
            try:
                parse()
            except ConfigError as error:
                self.add_error(error)
            return
        self._store(name.strip(), Registered(None, source, raw=raw, parse=parse))


@dataclass(frozen=True)
class InstalledApp:
    """A tout-en-un app installed under ``root``."""

    config: ToutEnUnConfig
    root: Path

    @property
    def app_name(self) -> str:
        return self.config.app_name

    @property
    def data_folder(self) -> Path:
        """The app's sync data folder (relative in the JSON, resolved against the app root)."""
        return self.root.joinpath(*self.config.app_sync_data_folder_path.split("/"))


class AppRegistry(_Registry[InstalledApp]):
    """Passed to ``register_apps``: ``add(app, root)`` and ``add_error(error)``."""

    _kind = "app"

    def add(self, app: ToutEnUnConfig, root: Path) -> None:
        """Register installed ``app`` living in ``root``."""
        self._store(app.app_name, Registered(InstalledApp(app, root), str(root)))
