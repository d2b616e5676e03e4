"""Valid messages with sensible defaults; override any field by keyword."""

from __future__ import annotations

from typing import Any

from campusguard.sdk.models import (
    DoorEvent,
    DoorEventKind,
    Frame,
    Incident,
    IncidentKind,
    Observation,
    Severity,
)


def make_incident(**overrides: Any) -> Incident:
    fields: dict[str, Any] = {
        "kind": IncidentKind.INTRUSION,
        "severity": Severity.SEVERE,
        "title": "Person in the east courtyard after hours",
        "camera_id": "test-camera",
        "zone": "courtyard",
        "confidence": 0.9,
        "source": "test",
    }
    fields.update(overrides)
    return Incident(**fields)


def make_frame(**overrides: Any) -> Frame:
    fields: dict[str, Any] = {"camera_id": "test-camera", "sequence": 0, "width": 640, "height": 480}
    fields.update(overrides)
    return Frame(**fields)


def make_observation(**overrides: Any) -> Observation:
    fields: dict[str, Any] = {
        "kind": "loitering",
        "camera_id": "test-camera",
        "zone": "entrance",
        "confidence": 0.8,
    }
    fields.update(overrides)
    return Observation(**fields)


def make_door_event(**overrides: Any) -> DoorEvent:
    fields: dict[str, Any] = {"door_id": "door-1", "kind": DoorEventKind.FORCED_OPEN, "source": "test"}
    fields.update(overrides)
    return DoorEvent(**fields)
