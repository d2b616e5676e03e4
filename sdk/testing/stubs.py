"""Stand-ins for the core, to exercise one component on its own (conformance suites)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from campusguard.sdk.bus import Handler, M, Overflow, Topic
from campusguard.sdk.camera import CameraSourceConfig
from campusguard.sdk.context import ComponentContext
from campusguard.sdk.models import Incident


class _NullSubscription:
    def __init__(self, name: str) -> None:
        self._name = name

    name = property(lambda self: self._name)
    delivered = property(lambda self: 0)
    dropped = property(lambda self: 0)
    failed = property(lambda self: 0)
    backlog = property(lambda self: 0)

    async def close(self) -> None:
        return None


@dataclass
class RecordingBus:
    """Records what a component publishes; subscriptions receive nothing."""

    published: list[tuple[str, Any]] = field(default_factory=list)

    def publish(self, topic: Topic[M], message: M) -> None:
        if not isinstance(message, topic.model):
            raise TypeError(f"topic {topic.name!r} carries {topic.model.__name__}, got {type(message).__name__}")
        self.published.append((topic.name, message))

    def subscribe(
        self,
        topic: Topic[M],
        handler: Handler[M],
        *,
        name: str,
        overflow: Overflow | None = None,
        maxsize: int = 1024,
    ) -> _NullSubscription:
        return _NullSubscription(name)


@dataclass
class StubCore:
    """A :class:`~campusguard.sdk.CoreAPI` that keeps raised incidents in a list."""

    data_dir: Path
    bus: RecordingBus = field(default_factory=RecordingBus)
    incidents: list[Incident] = field(default_factory=list)

    cameras: dict[str, CameraSourceConfig] = field(default_factory=dict)

    def camera(self, camera_id: str) -> CameraSourceConfig | None:
        return self.cameras.get(camera_id)

    def camera_ids(self) -> list[str]:
        return list(self.cameras)

    targets: list[list[str] | None] = field(default_factory=list)  # per incident, as raised

    async def raise_incident(self, incident: Incident, targets: Sequence[str] | None = None) -> Incident:
        self.incidents.append(incident)
        self.targets.append(None if targets is None else list(targets))
        return incident


def make_context(name: str, data_dir: Path, core: StubCore | None = None) -> ComponentContext:
    core = core or StubCore(data_dir)
    return ComponentContext(
        name=name, logger=logging.getLogger(f"campusguard.test.{name}"), core=core, data_dir=data_dir
    )
