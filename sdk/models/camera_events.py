"""What a camera reports about itself (its ONVIF events): motion, tamper, analytics rules, inputs."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from .base import Message


class CameraEventKind(StrEnum):
    MOTION = "motion"
    TAMPER = "tamper"
    ANALYTICS = "analytics"
    DIGITAL_INPUT = "digital_input"
    AVAILABILITY = "availability"  # campusguard's own: frames stopped (active=False) or came back (True)
    OTHER = "other"


#: ``CameraEvent.topic`` of the availability events the core publishes for every camera.
CAMERA_AVAILABILITY = "campusguard/CameraAvailability"


class CameraEvent(Message):
    """One notification from a camera's event service, e.g. an ONVIF PullPoint message.

    ``topic`` is as the camera sent it (``tns1:RuleEngine/CellMotionDetector/Motion``); ``source``
    and ``data`` are its SimpleItems (``{"VideoSourceConfigurationToken": "VSC_1"}``,
    ``{"IsMotion": "true"}``). ``property_operation`` is ``Initialized`` (the state when the
    subscription began), ``Changed`` or ``Deleted``, or ``None`` for a plain event. ``active`` is
    the boolean state the data carries (IsMotion, IsTamper, State, LogicalState), when it has one.
    """

    camera_id: str
    topic: str
    kind: CameraEventKind = CameraEventKind.OTHER
    source: dict[str, str] = Field(default_factory=dict)
    data: dict[str, str] = Field(default_factory=dict)
    property_operation: str | None = None
    active: bool | None = None
    utc_time: datetime | None = Field(default=None, description="when the camera says it happened")
