"""The MQTT notifier's topic layout and payloads (documented in docs/mqtt.md).

Pure functions and a small state table: no I/O, so the layout is checked without a broker.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from campusguard.sdk import CameraEvent, Incident, IncidentChange, IncidentKind, IncidentStatus

ONLINE, OFFLINE = "online", "offline"
ON, OFF = "ON", "OFF"
EXERCISE_PREFIX = "EXERCISE: "

#: ``CameraEvent.topic`` of an availability report on the bus; ``active`` is True online, False offline.
CAMERA_AVAILABILITY_EVENT = "campusguard/CameraAvailability"

_CLOSED_STATUSES = {IncidentStatus.RESOLVED, IncidentStatus.DISMISSED}
_CLOSING_CHANGES = {IncidentChange.RESOLVED, IncidentChange.DISMISSED}
_AVAILABILITY_KINDS = {IncidentKind.CAMERA_OFFLINE.value, IncidentKind.CAMERA_ONLINE.value}
_UNSAFE_IN_TOPIC = re.compile(r"[/+#\s\x00]")


def segment(value: str) -> str:
    """``value`` as one topic level: no ``/``, wildcards, spaces or NUL (each becomes ``_``)."""
    return _UNSAFE_IN_TOPIC.sub("_", value) or "_"


@dataclass(frozen=True)
class Topics:
    """Every topic the notifier publishes, under ``prefix``."""

    prefix: str

    @property
    def status(self) -> str:
        return f"{self.prefix}/status"

    def incident(self, incident_id: str) -> str:
        return f"{self.prefix}/incidents/{segment(incident_id)}"

    def event(self, kind: str) -> str:
        return f"{self.prefix}/events/{segment(kind)}"

    def availability(self, camera: str) -> str:
        return f"{self.prefix}/cameras/{segment(camera)}/availability"

    def state(self, camera: str, kind: str) -> str:
        return f"{self.prefix}/cameras/{segment(camera)}/{segment(kind)}"

    def attributes(self, camera: str, kind: str) -> str:
        return f"{self.state(camera, kind)}/attributes"


def is_open(incident: Incident) -> bool:
    """Raised, confirmed, acknowledged or escalated: open. Resolved or dismissed: closed."""
    return incident.status not in _CLOSED_STATUSES and incident.change not in _CLOSING_CHANGES


def document(incident: Incident, delivery_key: str) -> dict[str, Any]:
    """The JSON of one delivered version: the incident, its idempotency key, drills marked in the title."""
    doc = incident.model_dump(mode="json")
    doc["delivery_key"] = delivery_key
    if incident.exercise and not incident.title.startswith(EXERCISE_PREFIX):
        doc["title"] = EXERCISE_PREFIX + (incident.title or str(incident.kind))
    return doc


def encode(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


def camera_availability(event: CameraEvent) -> str | None:
    """``online``/``offline`` when ``event`` reports the camera's availability, else None."""
    if event.topic != CAMERA_AVAILABILITY_EVENT or event.active is None:
        return None
    return ONLINE if event.active else OFFLINE


def availability_from_incident(incident: Incident) -> str | None:
    """The core reports a stalled camera as a ``camera_offline`` incident and its return as ``camera_online``."""
    if incident.kind == IncidentKind.CAMERA_OFFLINE:
        return OFFLINE if is_open(incident) else ONLINE
    if incident.kind == IncidentKind.CAMERA_ONLINE:
        return ONLINE
    return None


def slot_of(doc: dict[str, Any]) -> tuple[str, str] | None:
    """The (camera, kind) binary sensor an incident document belongs to.

    None without a camera, and for camera_offline/online: those set the availability topic instead.
    """
    camera, kind = doc.get("camera_id"), str(doc.get("kind"))
    if not camera or kind in _AVAILABILITY_KINDS:
        return None
    return str(camera), kind


@dataclass
class OpenIncidents:
    """The latest document of every open incident: what is retained, and which sensors are ON."""

    docs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def apply(self, incident: Incident, doc: dict[str, Any]) -> None:
        if is_open(incident):
            self.docs[incident.id] = doc
        else:
            self.docs.pop(incident.id, None)

    def adopt(self, doc: object) -> None:
        """Take an open incident found retained on the broker (from before a restart), unless known."""
        if isinstance(doc, dict) and doc.get("id") and doc.get("kind") and doc.get("status") not in _CLOSED_STATUSES:
            self.docs.setdefault(str(doc["id"]), doc)

    def in_slot(self, slot: tuple[str, str]) -> list[dict[str, Any]]:
        return [doc for doc in self.docs.values() if slot_of(doc) == slot]

    def value(self, slot: tuple[str, str]) -> str:
        """ON while any incident of that kind on that camera is open."""
        return ON if self.in_slot(slot) else OFF

    def slots(self) -> set[tuple[str, str]]:
        return {slot for doc in self.docs.values() if (slot := slot_of(doc)) is not None}

    def attributes(self, slot: tuple[str, str], latest: dict[str, Any]) -> dict[str, Any]:
        """What Home Assistant shows next to the sensor; ``exercise`` lets automations tell drills apart."""
        still_open = self.in_slot(slot)
        return {
            "incident_id": latest.get("id"),
            "title": latest.get("title"),
            "severity": latest.get("severity"),
            "status": latest.get("status"),
            "change": latest.get("change"),
            "revision": latest.get("revision"),
            "zone": latest.get("zone"),
            "exercise": latest.get("exercise"),
            "delivery_key": latest.get("delivery_key"),
            "open_incidents": sorted(str(doc["id"]) for doc in still_open),
            # True only while every open incident here is a drill: a real one makes it a real alarm.
            "only_exercises": all(doc.get("exercise", False) for doc in still_open)
            if still_open
            else latest.get("exercise"),
        }
