"""Typed topics and the bus interface plugins publish to and subscribe on.

The embedded bus is in-process; a distributed one (NATS JetStream) can implement the same
:class:`Bus` protocol because every message is a serialisable :class:`~campusguard.sdk.models.Message`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

from .models import CameraEvent, DoorCommand, DoorEvent, Frame, Incident, Message, Observation, VisitorEvent

M = TypeVar("M", bound=Message)
M_contra = TypeVar("M_contra", bound=Message, contravariant=True)


class Overflow(StrEnum):
    """What happens when a subscriber falls behind.

    ``DROP_OLDEST`` suits telemetry (frames, detections): the oldest queued message is dropped and
    counted. ``NEVER_DROP`` is for life safety (incidents, door commands): the queue grows past its
    bound, a warning is logged, and nothing is lost. Neither ever blocks the publisher.
    """

    DROP_OLDEST = "drop_oldest"
    NEVER_DROP = "never_drop"


@dataclass(frozen=True)
class Topic(Generic[M]):
    """A named stream of one message type, e.g. ``Topic("incidents", Incident)``."""

    name: str
    model: type[M]
    default_overflow: Overflow = Overflow.DROP_OLDEST

    def __str__(self) -> str:
        return self.name


Handler = Callable[[M], Awaitable[None]]


class Subscription(Protocol):
    """A handle on one subscriber: its counters and a way to leave."""

    @property
    def name(self) -> str: ...

    @property
    def delivered(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def failed(self) -> int: ...

    @property
    def backlog(self) -> int: ...

    async def close(self) -> None: ...


class Bus(Protocol):
    """Publish never blocks and never raises because of a subscriber."""

    def publish(self, topic: Topic[M], message: M) -> None: ...

    def subscribe(
        self,
        topic: Topic[M],
        handler: Handler[M],
        *,
        name: str,
        overflow: Overflow | None = None,
        maxsize: int = 1024,
    ) -> Subscription: ...


# The core's own topics. Plugins may define more with their own names.
FRAMES: Topic[Frame] = Topic("frames", Frame, Overflow.DROP_OLDEST)
OBSERVATIONS: Topic[Observation] = Topic("observations", Observation, Overflow.NEVER_DROP)
INCIDENTS: Topic[Incident] = Topic("incidents", Incident, Overflow.NEVER_DROP)
DOOR_COMMANDS: Topic[DoorCommand] = Topic("door_commands", DoorCommand, Overflow.NEVER_DROP)
DOOR_EVENTS: Topic[DoorEvent] = Topic("door_events", DoorEvent, Overflow.NEVER_DROP)
CAMERA_EVENTS: Topic[CameraEvent] = Topic("camera_events", CameraEvent, Overflow.NEVER_DROP)
VISITOR_EVENTS: Topic[VisitorEvent] = Topic("visitor_events", VisitorEvent, Overflow.NEVER_DROP)
