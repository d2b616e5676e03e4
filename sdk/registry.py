"""Typed registries that registration hooks fill with ``registry.add(cls)``."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel

from .components import Component

C = TypeVar("C", bound=Component)


@dataclass(frozen=True)
class Registration:
    """One component class and the plugin that registered it."""

    cls: type[Component]
    plugin: str


class Registry(Generic[C]):
    """Collects component classes of one category.

    ``add`` checks the class at once, so a plugin author sees a mistake when the plugin loads and
    not when a school first configures it.
    """

    def __init__(self, category: str, bases: tuple[type[Component], ...]) -> None:
        self.category = category
        self._bases = bases
        self._entries: dict[str, Registration] = {}
        self.current_plugin = "<unknown>"  # set by the core around each hook call

    def add(self, cls: type[C]) -> type[C]:
        """Register ``cls``. Returns it, so ``add`` also works as a class decorator."""
        if not isinstance(cls, type) or not issubclass(cls, self._bases):
            names = " or ".join(b.__name__ for b in self._bases)
            raise TypeError(f"{self.category} registry takes subclasses of {names}, got {cls!r}")
        kind = getattr(cls, "kind", None)
        if not isinstance(kind, str) or not kind.isidentifier():
            raise TypeError(f"{cls.__qualname__}.kind must be a non-empty identifier, got {kind!r}")
        config = cls.Config
        if not (isinstance(config, type) and issubclass(config, BaseModel)):
            raise TypeError(f"{cls.__qualname__}.Config must be a pydantic BaseModel subclass")
        if config.model_config.get("extra") != "forbid":
            raise TypeError(
                f"{cls.__qualname__}.Config must reject unknown keys: set model_config = ConfigDict(extra='forbid')"
            )
        existing = self._entries.get(kind)
        if existing is not None and existing.cls is not cls:
            raise ValueError(
                f"{self.category} kind {kind!r} from plugin {self.current_plugin!r} is already "
                f"registered by plugin {existing.plugin!r}"
            )
        self._entries[kind] = Registration(cls, self.current_plugin)
        return cls

    def get(self, kind: str) -> Registration | None:
        return self._entries.get(kind)

    def kinds(self) -> list[str]:
        return sorted(self._entries)

    def remove_plugin(self, plugin: str) -> None:
        """Forget everything ``plugin`` registered (used when it fails after registering)."""
        self._entries = {k: r for k, r in self._entries.items() if r.plugin != plugin}

    def __iter__(self) -> Iterator[Registration]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)
