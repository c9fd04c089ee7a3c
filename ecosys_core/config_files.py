"""Read a grapin or app JSON file into its model, turning every failure into a ConfigError naming file and field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import ConfigError

if TYPE_CHECKING:  # pydantic loads with the first file read, not with the daemon
    from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound="BaseModel")


def validation_error_to_config_error(source: str, error: ValidationError) -> ConfigError:
    """Return one ConfigError for ``error``: first field as ``field``, every problem in the message."""
    problems: list[tuple[str | None, str]] = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or None
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "missing":
            message = "is required"
        problems.append((field, message))
    first_field = problems[0][0]
    rest = [f"{field}: {message}" if field else message for field, message in problems[1:]]
    return ConfigError(source, first_field, "; ".join([problems[0][1], *rest]))


def parse_model(model: type[M], data: Any, *, source: str, context: dict[str, Any] | None = None) -> M:
    """Validate ``data`` as ``model``; raise ConfigError naming ``source`` and the field on failure."""
    from pydantic import ValidationError

    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise validation_error_to_config_error(source, exc) from None


def load_model_file(model: type[M], path: Path, *, context: dict[str, Any] | None = None) -> M:
    """Read ``path`` as JSON and validate it as ``model``; every failure is a ConfigError naming the file."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, None, f"cannot read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(source, None, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ConfigError(source, None, "expected a JSON object")
    return parse_model(model, data, source=source, context=context)
