"""Turn pydantic validation errors into messages a school admin can act on."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from .locate import TomlLocator


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a config file: ``plugins.toml:14: [notifiers.mqtt] unknown key 'hostt'``."""

    file: str
    line: int | None
    section: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        section = f"[{self.section}] " if self.section else ""
        return f"{where}: {section}{self.message}"


def _is_secret_field(model: type[BaseModel] | None, name: str | int) -> bool:
    if model is None or not isinstance(name, str) or name not in model.model_fields:
        return False
    return "SecretStr" in repr(model.model_fields[name].annotation) or model.model_fields[name].annotation is SecretStr


def _describe_input(value: Any, secret: bool) -> str:
    if secret:
        return "(hidden)"
    if isinstance(value, dict):
        # A whole table may hold secrets (a password beside the key that was wrong): name its keys only.
        return f"a table with keys {', '.join(map(str, value)) or 'none'}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nested_model(model: type[BaseModel] | None, loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model that owns the last key of ``loc``, as far as it can be followed."""
    current = model
    for part in loc[:-1]:
        if current is None or not isinstance(part, str) or part not in current.model_fields:
            return current if isinstance(part, int) else None
        annotation = current.model_fields[part].annotation
        current = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return current


def issues_from_validation(
    error: ValidationError,
    *,
    file: str,
    locator: TomlLocator,
    prefix: Sequence[str | int],
    model: type[BaseModel] | None,
    section: str | None = None,
) -> list[ConfigIssue]:
    """One :class:`ConfigIssue` per pydantic error, located at ``prefix + loc`` in the file."""
    issues = []
    for item in error.errors():
        loc = tuple(item["loc"])
        owner = _nested_model(model, loc)
        key = ".".join(str(p) for p in loc)
        kind = item["type"]
        if kind == "extra_forbidden":
            name = str(loc[-1])
            options: Iterable[str] = owner.model_fields if owner else ()
            close = difflib.get_close_matches(name, list(options), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            allowed = ", ".join(sorted(options)) if owner else ""
            tail = f"; allowed keys: {allowed}" if allowed and not close else ""
            message = f"unknown key '{key}'{hint}{tail}"
        elif kind == "missing":
            message = f"missing required key '{key}'"
        else:
            secret = bool(loc) and _is_secret_field(owner, loc[-1])
            got = _describe_input(item.get("input"), secret)
            message = f"{key}: {item['msg'][:1].lower()}{item['msg'][1:]}, got {got}"
            if not key:
                message = f"{item['msg']}, got {got}"
        issues.append(ConfigIssue(file, locator.line_of((*prefix, *loc)), section, message))
    return issues


class ConfigInvalid(Exception):
    """A config file has one or more issues; ``str()`` lists them all, one per line."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))
