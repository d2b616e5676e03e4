"""Every message is a serialisable model with an id and an idempotency key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from campusguard.sdk import (
    Box,
    Detection,
    DoorAction,
    DoorCommand,
    Incident,
    IncidentKind,
    Keypoint,
    Observation,
    Severity,
    Stage,
)
from campusguard.sdk.testing import make_door_event, make_frame, make_incident, make_observation

REQUIRED_KINDS = {
    "weapon", "fight", "medical_fall", "intrusion", "loitering", "crowd", "tailgating", "door_forced",
    "door_held", "panic", "camera_offline", "camera_tamper", "visitor_watchlist",
}  # fmt: skip


def test_incident_kinds_cover_the_required_set() -> None:
    assert REQUIRED_KINDS <= {k.value for k in IncidentKind}


@given(
    kind=st.sampled_from(list(IncidentKind)),
    severity=st.sampled_from(list(Severity)),
    confidence=st.floats(0, 1),
    exercise=st.booleans(),
    title=st.text(max_size=50),
)
def test_incident_round_trips_through_json(
    kind: IncidentKind, severity: Severity, confidence: float, exercise: bool, title: str
) -> None:
    incident = make_incident(kind=kind, severity=severity, confidence=confidence, exercise=exercise, title=title)
    incident.stamp(Stage.RAISED)
    incident.stamp(Stage.DELIVERED, target="sms")
    assert Incident.model_validate_json(incident.model_dump_json()) == incident
    assert set(incident.stages) == {"raised", "delivered:sms"}


def test_other_messages_round_trip() -> None:
    observation = make_observation(evidence={"boxes": [Box(x1=1, y1=2, x2=3, y2=4)], "track_ids": [7], "scores": [0.5]})
    assert Observation.model_validate_json(observation.model_dump_json()) == observation
    event = make_door_event()
    assert type(event).model_validate_json(event.model_dump_json()) == event
    command = DoorCommand(door_id="d", action=DoorAction.LOCKDOWN, requested_by="rule:lockdown", exercise=True)
    assert DoorCommand.model_validate_json(command.model_dump_json()) == command


def test_frame_json_carries_metadata_not_pixels() -> None:
    frame = make_frame(image=[[1, 2], [3, 4]])
    data = frame.model_dump()
    assert "image" not in data and data["camera_id"] == "test-camera" and "captured" in data


def test_unknown_fields_and_bad_values_are_rejected() -> None:
    with pytest.raises(ValidationError, match="extra"):
        Incident(kind="weapon", colour="red")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        make_incident(confidence=1.5)
    with pytest.raises(ValidationError, match="x2 must be >= x1"):
        Box(x1=5, y1=0, x2=1, y2=1)
    with pytest.raises(ValidationError):
        Keypoint(x=0, y=0, score=2)


def test_ids_and_idempotency_keys() -> None:
    a, b = make_incident(), make_incident()
    assert a.id != b.id and a.idempotency_key == a.id
    assert a.delivery_key("sms") == f"{a.id}:sms"


def test_detection_with_keypoints() -> None:
    detection = Detection(
        box=Box(x1=0, y1=0, x2=10, y2=20), label="person", score=0.4, keypoints=(Keypoint(x=1, y=1, score=0.3),)
    )
    assert detection.box.center == (5, 10) and detection.box.height == 20
