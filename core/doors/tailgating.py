"""Tailgating: more people walk in through a door than its access control let in.

Joins the access-control system's ``access_granted`` events for a door with the ``line_crossing``
observations of the camera that watches it (the door's ``camera`` and ``line``, walking in the
door's ``entry_direction``). Each grant admits one person for ``tailgate_seconds``; a person who
crosses while a grant was just used, with none left, walked in on someone else's badge: a
``tailgating`` observation, which rules turn into incidents like any other. A crossing with no
grant at all in the window is not tailgating (the door was held or forced: its own events say so).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from campusguard.sdk import (
    DOOR_EVENTS,
    OBSERVATIONS,
    DoorEvent,
    DoorEventKind,
    Evidence,
    Observation,
    Overflow,
    StageStamp,
    Subscription,
)
from campusguard.sdk.bus import Bus

from .model import DoorLookup, DoorSettings

log = logging.getLogger("campusguard.doors.tailgating")


@dataclass
class _Door:
    name: str
    settings: DoorSettings
    open_grants: deque[float] = field(default_factory=deque)  # grants not yet walked through
    used_grants: deque[float] = field(default_factory=deque)  # grants someone walked through


def _when(at: datetime) -> float:
    return at.timestamp()


class TailgatingWatch:
    def __init__(self, bus: Bus, doors: dict[str, DoorSettings]) -> None:
        self.bus = bus
        watched = {n: d for n, d in doors.items() if d.camera and d.line}
        self._doors = {name: _Door(name, settings) for name, settings in watched.items()}
        # Adapters report their own door ids: map (adapter, its id) and the bare id to our door.
        self._lookup = DoorLookup(watched)
        self._by_line = {(d.camera, d.line): n for n, d in watched.items()}
        self._subscriptions: list[Subscription] = []

    @property
    def active(self) -> bool:
        return bool(self._doors)

    def start(self) -> None:
        # Never drop: a lost grant would turn a badge holder into a tailgater.
        self._subscriptions = [
            self.bus.subscribe(DOOR_EVENTS, self.on_door_event, name="tailgating-doors", overflow=Overflow.NEVER_DROP),
            self.bus.subscribe(OBSERVATIONS, self.on_observation, name="tailgating", overflow=Overflow.NEVER_DROP),
        ]

    async def stop(self) -> None:
        for subscription in self._subscriptions:
            await subscription.close()
        self._subscriptions = []

    def _door_of(self, event: DoorEvent) -> _Door | None:
        name = self._lookup.name(event.source, event.door_id)
        return self._doors.get(name) if name else None

    async def on_door_event(self, event: DoorEvent) -> None:
        door = self._door_of(event)
        if door is not None and event.kind is DoorEventKind.ACCESS_GRANTED:
            door.open_grants.append(_when(event.created_at))

    async def on_observation(self, observation: Observation) -> None:
        if observation.kind != "line_crossing":
            return
        attributes = observation.attributes
        name = self._by_line.get((observation.camera_id, str(attributes.get("line"))))
        if name is None:
            return
        door = self._doors[name]
        if attributes.get("direction") != door.settings.entry_direction:
            return
        at = _when((observation.captured or observation.detected).wall)
        window = door.settings.tailgate_seconds
        for grants in (door.open_grants, door.used_grants):
            while grants and grants[0] < at - window:
                grants.popleft()
        if door.open_grants:
            door.used_grants.append(door.open_grants.popleft())  # this person's own badge
            return
        if not door.used_grants:
            return  # no grant at all: held or forced, which the door's own events report
        self._report(door, observation)

    def _report(self, door: _Door, crossing: Observation) -> None:
        grants = len(door.used_grants)
        log.warning(
            "door %r: a person walked in on someone else's grant (%d grant(s) in the window)", door.name, grants
        )
        observation = Observation(
            kind="tailgating",
            camera_id=crossing.camera_id,
            confidence=crossing.confidence,
            track_ids=list(crossing.track_ids),
            evidence=crossing.evidence.model_copy(deep=True) if crossing.evidence else Evidence(),
            captured=crossing.captured,
            detected=StageStamp.now(),
            attributes={"door": door.name, "grants": grants, "line": door.settings.line},
        )
        self.bus.publish(OBSERVATIONS, observation)
