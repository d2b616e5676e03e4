"""What the core hands to components and lifecycle hooks: the only way a plugin reaches it."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from .bus import Bus
from .camera import CameraSourceConfig
from .models import Incident


class CoreAPI(Protocol):
    """The running core, as plugins see it (``campusguard_startup(core)`` receives one)."""

    @property
    def bus(self) -> Bus: ...

    @property
    def data_dir(self) -> Path: ...

    def camera(self, camera_id: str) -> CameraSourceConfig | None:
        """The configuration of camera ``camera_id`` (its zones and lines included), or None."""
        ...

    def camera_ids(self) -> list[str]:
        """The names of every configured camera, in config order."""
        ...

    async def raise_incident(self, incident: Incident, targets: Sequence[str] | None = None) -> Incident:
        """Store ``incident`` and queue its deliveries in one transaction, then publish it.

        ``targets`` are the notifiers to deliver to (by name); None means every notifier.

        Returns once it is durable: an incident that was accepted survives ``kill -9``.
        """
        ...


@dataclass(frozen=True)
class ComponentContext:
    """Per-component handles: its own logger and data folder, and the core."""

    name: str
    logger: logging.Logger
    core: CoreAPI
    data_dir: Path
    config_dir: Path | None = None  # the config file's folder: relative paths in options start here

    def resolve(self, path: Path) -> Path:
        """``path`` as written in the config, made absolute against the config file's folder."""
        if path.is_absolute():
            return path
        return (self.config_dir or Path.cwd()) / path

    @property
    def bus(self) -> Bus:
        return self.core.bus
