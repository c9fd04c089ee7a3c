"""The exceptions a user can meet. The CLI turns each into one line on stderr and a non-zero exit."""

from __future__ import annotations


class EcosysError(Exception):
    """Base of every error whose message is meant for a person; ``exit_code`` is what the CLI returns."""

    exit_code = 1


class ConfigError(EcosysError):
    """A grapin, app or settings file is invalid; the message names the file and the field."""

    def __init__(self, source: str, field: str | None, message: str) -> None:
        self.source = source
        self.field = field
        self.message = message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")


class NotFound(EcosysError):
    """A named thing (grapin, task, device, app, prompt) does not exist."""


class AlreadyExists(EcosysError):
    """A named thing already exists and the operation would overwrite it."""


class PathNotResolved(EcosysError):
    """A grapin or app path cannot be resolved on this machine; the message says why."""


class UnsafePath(EcosysError):
    """A path from outside (peer, archive, JSON) would escape its root or is not portable."""


class StoreError(EcosysError):
    """The SQLite store cannot be opened or migrated."""


class PromptTimeout(EcosysError):
    """Nobody answered a prompt before its deadline."""


class IntegrityError(EcosysError):
    """Content did not hash to what was announced; nothing was written."""


class RootUnavailable(EcosysError):
    """A sync task's folder cannot be listed (missing, unmounted, not a folder): nothing is recorded,
    because reading it as empty would send a deletion of every file to every device."""


class ChangeRefused(EcosysError):
    """A sync message this device will not act on (unknown task, unlinked device, unsafe path); nothing
    was written."""
