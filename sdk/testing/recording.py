"""A notifier that keeps what it receives, for tests that check which incidents were raised."""

from __future__ import annotations

from typing import ClassVar

from campusguard.sdk.components import Notifier
from campusguard.sdk.markers import hookimpl
from campusguard.sdk.models import Incident
from campusguard.sdk.registry import Registry


class RecordingNotifier(Notifier):
    """``[notifiers.recorder]``: every incident delivered to it lands in ``RecordingNotifier.received``."""

    kind = "recorder"
    received: ClassVar[list[Incident]] = []

    async def notify(self, incident: Incident) -> None:
        RecordingNotifier.received.append(incident)

    @classmethod
    def kinds(cls, camera: str | None = None) -> list[str]:
        """The kinds received, in order (of one camera's incidents, when given)."""
        return [str(i.kind) for i in cls.received if camera is None or i.camera_id == camera]


class RecordingPlugin:
    """Register with ``campusguard_core(config, plugins={"recorder": RecordingPlugin()})``."""

    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        registry.add(RecordingNotifier)
