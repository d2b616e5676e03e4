"""Typed, JSON-serialisable models: what flows between plugins and the core."""

from .base import Message, StageStamp, new_id, utc_now
from .camera_events import CAMERA_AVAILABILITY, CameraEvent, CameraEventKind
from .doors import DoorAction, DoorCommand, DoorEvent, DoorEventKind
from .incidents import Incident, IncidentChange, IncidentKind, IncidentStatus, Location, Severity, Stage
from .vision import Box, Detection, Evidence, Frame, Keypoint, Observation, Track, TrackPoint, keep_files
from .visitors import Visitor, VisitorEvent, VisitorEventKind

__all__ = [
    "CAMERA_AVAILABILITY",
    "Box",
    "CameraEvent",
    "CameraEventKind",
    "Detection",
    "DoorAction",
    "DoorCommand",
    "DoorEvent",
    "DoorEventKind",
    "Evidence",
    "Frame",
    "Incident",
    "IncidentChange",
    "IncidentKind",
    "IncidentStatus",
    "Keypoint",
    "Location",
    "Message",
    "Observation",
    "Severity",
    "Stage",
    "StageStamp",
    "Track",
    "TrackPoint",
    "Visitor",
    "VisitorEvent",
    "VisitorEventKind",
    "keep_files",
    "new_id",
    "utc_now",
]
