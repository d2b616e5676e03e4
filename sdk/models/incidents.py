"""The typed incident: what campusguard raises, stores, delivers and lets people handle."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .base import Message, StageStamp
from .vision import Evidence


class IncidentKind(StrEnum):
    """What happened. Plugins may raise other kinds as plain strings; these are the known ones."""

    WEAPON = "weapon"
    FIGHT = "fight"
    MEDICAL_FALL = "medical_fall"
    INTRUSION = "intrusion"
    LOITERING = "loitering"
    CROWD = "crowd"
    TAILGATING = "tailgating"
    DOOR_FORCED = "door_forced"
    DOOR_HELD = "door_held"
    PANIC = "panic"
    CAMERA_OFFLINE = "camera_offline"
    CAMERA_ONLINE = "camera_online"
    CAMERA_TAMPER = "camera_tamper"
    VISITOR_WATCHLIST = "visitor_watchlist"
    DEVICE_OFFLINE = "device_offline"


class Severity(StrEnum):
    """Ordered from least to most urgent; maps onto CAP's severity later."""

    INFO = "info"
    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"
    EXTREME = "extreme"


class IncidentStatus(StrEnum):
    NEW = "new"
    VERIFYING = "verifying"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class IncidentChange(StrEnum):
    """Why a notifier is given this version of an incident (``Incident.change``)."""

    RAISED = "raised"  # first delivery
    UPDATED = "updated"  # the same situation seen again (not delivered; stored and published)
    CONFIRMED = "confirmed"  # verified by a person or auto-confirmed: its actions run now
    DISMISSED = "dismissed"  # a person judged it false
    ACKNOWLEDGED = "acknowledged"  # someone is handling it: escalation stops
    RESOLVED = "resolved"
    ESCALATED = "escalated"  # nobody acknowledged in time: the next group hears of it
    EVIDENCE = "evidence"  # the clip is ready


class Location(BaseModel):
    """Where on campus: a human label, and coordinates when the site has them."""

    model_config = ConfigDict(extra="forbid")

    site: str | None = None
    building: str | None = None
    floor: str | None = None
    room: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class Stage(StrEnum):
    """Per-stage timestamps of an incident: captured, detected, raised, enqueued (its deliveries written).

    When each target was sent each version is kept with the delivery itself, in the outbox, so a
    delivery never rewrites the incident: ``campusguard incidents show`` and ``stats`` give them.
    """

    CAPTURED = "captured"
    DETECTED = "detected"
    RAISED = "raised"
    ENQUEUED = "enqueued"
    DELIVERED = "delivered"


class Incident(Message):
    """A typed safety incident.

    ``exercise`` marks a drill: every message caused by it must say so, end to end.
    """

    kind: IncidentKind | str
    severity: Severity = Severity.MODERATE
    status: IncidentStatus = IncidentStatus.NEW
    title: str = ""
    camera_id: str | None = None
    zone: str | None = None
    location: Location | None = None
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    evidence: Evidence = Field(default_factory=Evidence)
    exercise: bool = False
    source: str | None = Field(default=None, description="the component that raised it")
    stages: dict[str, StageStamp] = Field(default_factory=dict)
    revision: int = Field(default=0, ge=0, description="0 when raised; +1 for every delivered change")
    change: IncidentChange | str = Field(default=IncidentChange.RAISED, description="why receivers get this version")
    rule: str | None = Field(default=None, description="the rule that raised it, if any")
    details: dict[str, Any] = Field(
        default_factory=dict, description="kind-specific facts for receivers, e.g. the visitor roster of a lockdown"
    )

    def stamp(self, stage: Stage | str, target: str | None = None) -> StageStamp:
        """Record that this incident reached ``stage`` now (per ``target`` for deliveries)."""
        key = f"{stage}:{target}" if target else str(stage)
        stamp = StageStamp.now()
        self.stages = {**self.stages, key: stamp}
        return stamp

    def advance(self, change: IncidentChange, status: IncidentStatus | None = None, stage: str | None = None) -> None:
        """Record a change its receivers hear of: a new revision (a new idempotency key), stamped.

        ``status``, when given, is the new status; ``stage`` names the stamp (default: the change).
        """
        if status is not None:
            self.status = status
        self.revision += 1
        self.change = change
        self.stamp(stage or str(change))

    def delivery_key(self, target: str) -> str:
        """The idempotency key of this version's delivery to ``target``: stable across restarts.

        Each delivered change has its own revision, so a receiver dedups retries, not changes.
        """
        if self.revision == 0:
            return f"{self.id}:{target}"
        return f"{self.id}:{self.revision}:{target}"
