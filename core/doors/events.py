"""Door and camera events become observations, so ``[[rules]]`` decide what is an incident.

A door forced or held open, a reader tampered with, a panel that went offline, a camera's own
tamper alarm or a panic button wired to its input: each is published on ``observations`` with the
kind below, at the camera that watches the door (``[doors.X] camera``) when there is one, else under
the door's own name, so a rule can match it and point cameras, notify and escalate as for anything
a camera saw. Access grants and denials are not observations: tailgating uses the grants.
"""

from __future__ import annotations

from campusguard.sdk import (
    CAMERA_EVENTS,
    DOOR_EVENTS,
    OBSERVATIONS,
    CameraEvent,
    CameraEventKind,
    DoorEvent,
    DoorEventKind,
    Observation,
    Overflow,
    Subscription,
)
from campusguard.sdk.bus import Bus

from .model import DoorLookup, DoorSettings

DOOR_KINDS: dict[DoorEventKind, str] = {
    DoorEventKind.FORCED_OPEN: "door_forced",
    DoorEventKind.HELD_OPEN: "door_held",
    DoorEventKind.READER_TAMPER: "reader_tamper",
    DoorEventKind.DEVICE_OFFLINE: "door_device_offline",
}
# A camera's own alarms that mean something on their own (motion does not: detection covers it).
CAMERA_KINDS: dict[CameraEventKind, str] = {
    CameraEventKind.TAMPER: "camera_tamper_reported",
    CameraEventKind.DIGITAL_INPUT: "camera_input",  # e.g. a panic button wired to the camera
}


class EventObservations:
    def __init__(self, bus: Bus, doors: dict[str, DoorSettings]) -> None:
        self.bus = bus
        self._doors = doors
        self._lookup = DoorLookup(doors)
        self._subscriptions: list[Subscription] = []

    def start(self) -> None:
        self._subscriptions = [
            self.bus.subscribe(DOOR_EVENTS, self.on_door_event, name="door-observations", overflow=Overflow.NEVER_DROP),
            self.bus.subscribe(
                CAMERA_EVENTS, self.on_camera_event, name="camera-observations", overflow=Overflow.NEVER_DROP
            ),
        ]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions = []

    async def on_door_event(self, event: DoorEvent) -> None:
        kind = DOOR_KINDS.get(event.kind)
        if kind is None:
            return
        name = self._lookup.name(event.source, event.door_id) or event.door_id
        door = self._doors.get(name)
        camera = door.camera if door is not None and door.camera else name
        attributes = {"door": name, "source": event.source, "state": event.state, "detail": event.detail}
        observation = Observation(
            kind=kind, camera_id=camera, zone=door.zone if door else None, confidence=1.0, attributes=attributes
        )
        self.bus.publish(OBSERVATIONS, observation)

    async def on_camera_event(self, event: CameraEvent) -> None:
        kind = CAMERA_KINDS.get(event.kind)
        # Only the moment it becomes active: "Initialized" states and the all-clear are not events.
        if kind is None or event.active is not True or event.property_operation == "Initialized":
            return
        attributes = {"topic": event.topic, "source": event.source, "data": event.data}
        self.bus.publish(OBSERVATIONS, Observation(kind=kind, camera_id=event.camera_id, confidence=1.0,
                                                   attributes=attributes))  # fmt: skip
