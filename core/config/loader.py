"""Read ``plugins.toml`` into typed settings; every error names the file, the line and the key."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from campusguard.sdk import Component, Registry

from .errors import ConfigInvalid, ConfigIssue, issues_from_validation
from .locate import TomlLocator
from .model import COMPONENT_TABLES, RESERVED_KEYS, CoreSettings, Settings
from .secrets import SecretMissing, resolve_secrets


@dataclass(frozen=True)
class ComponentSpec:
    """One configured component instance, validated against its class's ``Config``."""

    table: str
    name: str
    kind: str
    cls: type[Component]
    plugin: str
    config: BaseModel


@dataclass
class LoadedConfig:
    """A parsed config file: typed settings plus what is needed to point at its lines."""

    path: Path | None
    display: str
    settings: Settings
    raw: dict[str, Any]
    locator: TomlLocator
    base_dir: Path = field(default_factory=Path.cwd)
    # Problems in [core] or [delivery], held back so that component tables are checked too and
    # every issue is reported at once. validate_components raises them.
    deferred: list[ConfigIssue] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        data_dir = self.settings.core.data_dir
        return data_dir if data_dir.is_absolute() else self.base_dir / data_dir


_AT_LINE = re.compile(r"\(at line (\d+), column \d+\)")


def _toml_error_line(exc: tomllib.TOMLDecodeError) -> int | None:
    lineno = getattr(exc, "lineno", None)  # Python 3.14+
    if isinstance(lineno, int):
        return lineno
    match = _AT_LINE.search(str(exc))
    return int(match.group(1)) if match else None


def parse_config_text(
    text: str, *, display: str, base_dir: Path, path: Path | None = None, defer: bool = False
) -> LoadedConfig:
    """Parse and check TOML text (the first pass: everything but component options)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid([ConfigIssue(display, _toml_error_line(exc), None, f"invalid TOML: {exc}")]) from None
    locator = TomlLocator(text)
    issues: list[ConfigIssue] = []
    core_raw = raw.get("core", {})
    core: CoreSettings | None = None
    if not isinstance(core_raw, dict):
        issues.append(ConfigIssue(display, locator.line_of(("core",)), None, "[core] must be a table"))
    else:
        try:
            core = CoreSettings(**core_raw)
        except ValidationError as exc:
            issues += issues_from_validation(
                exc, file=display, locator=locator, prefix=("core",), model=CoreSettings, section="core"
            )
    fatal: list[ConfigIssue] = []
    try:
        settings = Settings.model_validate({**raw, "core": core or CoreSettings()})
    except ValidationError as exc:
        for issue in issues_from_validation(exc, file=display, locator=locator, prefix=(), model=Settings):
            issue = _top_level_issue(issue)
            # [plugins] decides what may be imported, and a broken table shape stops everything.
            deferrable = issue.message.startswith("delivery.")
            (issues if deferrable else fatal).append(issue)
        if fatal or not defer:
            raise ConfigInvalid(issues + fatal) from None
        settings = Settings.model_validate({**raw, "core": core or CoreSettings(), "delivery": {}})
    if issues and not defer:
        raise ConfigInvalid(issues)
    return LoadedConfig(path, display, settings, raw, locator, base_dir, deferred=issues)


def _top_level_issue(issue: ConfigIssue) -> ConfigIssue:
    # "cameras.sample: input should be a valid dictionary" reads better as a section problem.
    # Only for a top-level key: "unknown key 'rules.0.whn'" is inside a table that exists.
    if issue.message.startswith("unknown key") and "." not in issue.message.split("'")[1]:
        tables = ", ".join(f"[{name}]" for name in Settings.model_fields)
        return ConfigIssue(issue.file, issue.line, None, f"{issue.message}; top-level tables are {tables}")
    return issue


def load_config(path: Path, *, defer: bool = False) -> LoadedConfig:
    """Read and check ``path``. Raises :class:`ConfigInvalid` with every issue found."""
    display = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigInvalid([ConfigIssue(display, None, None, "file not found")]) from None
    except IsADirectoryError:
        raise ConfigInvalid([ConfigIssue(display, None, None, "is a directory, expected a TOML file")]) from None
    except PermissionError:
        raise ConfigInvalid([ConfigIssue(display, None, None, "cannot read file: permission denied")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigInvalid([ConfigIssue(display, None, None, f"not UTF-8 text: {exc.reason}")]) from None
    except OSError as exc:
        raise ConfigInvalid([ConfigIssue(display, None, None, f"cannot read file: {exc.strerror}")]) from None
    return parse_config_text(text, display=display, base_dir=path.resolve().parent, path=path, defer=defer)


def validate_components(loaded: LoadedConfig, registries: Mapping[str, Registry[Any]]) -> list[ComponentSpec]:
    """The second pass: check each component table against the class registered for its ``type``."""
    specs: list[ComponentSpec] = []
    issues: list[ConfigIssue] = list(loaded.deferred)
    for table, registry_name in COMPONENT_TABLES.items():
        registry = registries[registry_name]
        entries: dict[str, dict[str, Any]] = getattr(loaded.settings, table)
        for name, options in entries.items():
            section = f"{table}.{name}"
            at = loaded.locator.line_of((table, name))
            options = dict(options)
            kind = options.pop("type", name)
            enabled = options.pop("enabled", True)
            if not isinstance(enabled, bool):
                line = loaded.locator.line_of((table, name, "enabled"))
                issues.append(
                    ConfigIssue(loaded.display, line, section, f"enabled: expected true or false, got {enabled!r}")
                )
                continue
            if not enabled:
                continue
            registration = registry.get(str(kind))
            if registration is None:
                known = ", ".join(registry.kinds()) or "none registered"
                line = loaded.locator.line_of((table, name, "type")) or at
                issues.append(
                    ConfigIssue(loaded.display, line, section, f"unknown {table} type {kind!r}; known types: {known}")
                )
                continue
            try:
                options = resolve_secrets(options, base_dir=loaded.base_dir)
            except SecretMissing as exc:
                line = loaded.locator.line_of((table, name, *exc.path))
                issues.append(ConfigIssue(loaded.display, line, section, f"{'.'.join(map(str, exc.path))}: {exc}"))
                continue
            model = registration.cls.Config
            try:
                config = model.model_validate(options)
            except ValidationError as exc:
                issues += issues_from_validation(
                    exc,
                    file=loaded.display,
                    locator=loaded.locator,
                    prefix=(table, name),
                    model=model,
                    section=section,
                )
                continue
            specs.append(ComponentSpec(table, name, str(kind), registration.cls, registration.plugin, config))
    if issues:
        raise ConfigInvalid(issues)
    return specs


__all__ = [
    "RESERVED_KEYS",
    "ComponentSpec",
    "LoadedConfig",
    "load_config",
    "parse_config_text",
    "validate_components",
]
