"""The one place that builds the plugin manager: specs, default plugins, entry points, JSON grapins."""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from typing import Any

import pluggy

from . import hookspecs
from .defaults import DEFAULT_PLUGINS
from .defaults.installed_apps import InstalledApps
from .defaults.json_grapins import BundledGrapins, ImportedGrapins, UserGrapins
from .defaults.link_paths import CatalogueLinkPaths
from .errors import EcosysError
from .grapins import AppRegistry, GrapinRegistry
from .resources import bundled_dir
from .settings import HomeLayout
from .types import Placeholder

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "ecosys"


class EcosysPlugins:
    """The plugin manager of one ECOSYS_HOME plus the catalogues built from its hooks (built lazily)."""

    def __init__(self, home: HomeLayout, pm: pluggy.PluginManager) -> None:
        self.home = home
        self.pm = pm
        self.hook = pm.hook
        self._placeholders: dict[str, Placeholder] | None = None
        self.distributions: dict[str, tuple[str, str]] = {}  # plugin name -> (distribution, version)

    def placeholders(self) -> dict[str, Placeholder]:
        """Return the placeholder table (name → Placeholder) from ``register_placeholders``."""
        if self._placeholders is None:
            table: dict[str, Placeholder] = {}
            self.hook.register_placeholders(register=lambda p: table.__setitem__(p.name, p))
            self._placeholders = table
        return self._placeholders

    def grapins(self) -> GrapinRegistry:
        """Build the grapin catalogue from ``register_grapins`` (broken files are in ``.errors``)."""
        registry = GrapinRegistry(known_placeholders=frozenset(self.placeholders()))
        self.hook.register_grapins(registry=registry)
        return registry

    def apps(self) -> AppRegistry:
        """Build the installed-app catalogue from ``register_apps``."""
        registry = AppRegistry(known_placeholders=frozenset(self.placeholders()))
        self.hook.register_apps(registry=registry)
        return registry

    def plugin_rows(self) -> list[dict[str, Any]]:
        """Describe each registered plugin: name, hooks it implements, version of its distribution."""
        rows = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
            distribution, version = self.distributions.get(name, (None, None))
            rows.append({"name": name, "hooks": hooks, "version": version, "distribution": distribution})
        return sorted(rows, key=lambda r: r["name"])


def get_plugin_manager(home: HomeLayout, *, entry_points: bool = True) -> EcosysPlugins:
    """Build the plugin manager for ``home``: hook specs, default plugins (by dotted name), JSON grapins
    from the bundled ``plugins/`` and ``home.plugins``, installed apps, then the ``ecosys`` entry points.

    A third-party plugin that fails to import is logged and skipped, never fatal.
    """
    pm = pluggy.PluginManager("ecosys")
    pm.add_hookspecs(hookspecs)
    for dotted in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(dotted), name=dotted)
    pm.register(BundledGrapins(bundled_dir("plugins")), name="bundled-grapins")
    pm.register(ImportedGrapins(home.plugins), name="imported-grapins")
    pm.register(UserGrapins(home.plugins), name="user-grapins")
    pm.register(InstalledApps(home.apps), name="installed-apps")
    plugins = EcosysPlugins(home, pm)
    pm.register(CatalogueLinkPaths(plugins.grapins, plugins.apps, plugins.placeholders), name="catalogue-link-paths")
    if entry_points:
        _load_entry_points(plugins)
    return plugins


def _load_entry_points(plugins: EcosysPlugins) -> None:
    pm = plugins.pm
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None or pm.is_blocked(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not break Ecosys
            log.warning("plugin %s (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        try:
            pm.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError, EcosysError) as exc:
            log.warning("plugin %s refused: %s", ep.name, exc)
            continue
        if ep.dist is not None:
            plugins.distributions[ep.name] = (ep.dist.name, ep.dist.version)
