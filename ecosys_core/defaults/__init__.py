"""Builtin behaviour, written as ordinary plugins through the same hooks as anyone else's."""

DEFAULT_PLUGINS: tuple[str, ...] = (
    "ecosys_core.defaults.placeholders",
    "ecosys_core.defaults.installers",
)
