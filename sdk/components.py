"""Component base classes, one per kind of plugin.

A component class declares ``kind`` (the name it is configured by, e.g. ``"webhook"``) and a
pydantic ``Config`` model with ``extra="forbid"``. The core builds it as ``cls(name, config,
context)``, awaits ``start()``, calls its work method, and awaits ``stop()``. Heavy imports
(onnxruntime, vendor SDKs) belong in ``start()`` so that listing plugins stays instant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .bus import Topic
from .camera import CameraStats
from .context import ComponentContext
from .models import Detection, DoorCommand, Frame, Incident, Message, Observation, Track, Visitor


class NoConfig(BaseModel):
    """The config of a component that takes none: any key is an error."""

    model_config = ConfigDict(extra="forbid")


class Component:
    """Base of every component.

    ``start()`` may raise :class:`~campusguard.sdk.errors.NotReady` (retried with backoff) or
    :class:`~campusguard.sdk.errors.AuthFailed` (stopped and reported). ``stop()`` must be safe to
    call twice and after a failed start.
    """

    category: ClassVar[str] = "component"
    kind: ClassVar[str]
    Config: ClassVar[type[BaseModel]] = NoConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        self.name = name
        self.config = config
        self.context = context
        self.log = context.logger

    async def start(self) -> None:
        """Connect, load models, warm up. Called once per (re)start."""

    def preflight(self) -> list[tuple[str, str]]:
        """What would stop ``start()`` that can be seen without starting (a file that is not there), as
        ``(config key, message)`` pairs; ``campusguard check`` lists them with their config lines.
        Cheap and side-effect free: no network, no model loading. ``start()`` still raises for them."""
        return []

    async def stop(self) -> None:
        """Release everything. Idempotent."""

    def __repr__(self) -> str:
        # The config is not shown: it may hold secrets (SecretStr hides them, but be safe).
        return f"<{type(self).__name__} {self.category}:{self.kind} {self.name!r}>"


class CameraSource(Component):
    """Produces frames from one camera (RTSP, file, snapshot). Decoding never runs on the loop.

    ``Config`` should subclass :class:`~campusguard.sdk.CameraSourceConfig` so the camera takes the
    pipeline's options (frame-rate cap, stall timeout, motion, tamper). ``stats`` is kept current
    by the source. ``frames()`` keeps reconnecting by itself; it raises ``AuthFailed`` when
    credentials are rejected and simply ends when a finite source (a file) is done.
    """

    category = "camera_source"

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        self.stats = CameraStats()

    def frames(self) -> AsyncIterator[Frame]:
        """Yield decoded frames, latest first when the consumer is slow."""
        raise NotImplementedError


class Detector(Component):
    """Finds objects in a batch of frames. Runs its model in worker threads, never on the loop."""

    category = "detector"
    #: The labels it can report. A class whose labels depend on its model (a user's YOLO file) sets
    #: them on the instance in ``start()``. Empty: not declared, so the core cannot check coverage.
    labels: tuple[str, ...] = ()
    #: (width, height) of the model input; (0, 0): any size. Per instance, like ``labels``.
    input_size: tuple[int, int] = (0, 0)
    #: Set by the core before each call: seconds the oldest frame still waiting for detection has
    #: waited (0 when none waits, as in a replay). A detector with optional extra work (MoveNet's
    #: crowd tiles) may skip it while others wait, so one crowded camera never delays the rest.
    lag: float = 0.0
    #: Set with ``lag``: how many frames (of other cameras) are waiting for detection.
    waiting: int = 0
    #: Set with ``lag``: frames per second all cameras offer to detection (0 in a replay).
    demand: float = 0.0

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        """Return one list of detections per frame, in the order given."""
        raise NotImplementedError


class Tracker(Component):
    """Follows detections over time on one camera."""

    category = "tracker"

    async def update(self, frame: Frame, detections: Sequence[Detection]) -> list[Track]:
        raise NotImplementedError


class Analyzer(Component):
    """Turns tracks into observations (loitering, crowd, fall, ...)."""

    category = "analyzer"
    #: The track labels it fires on (``person``, ``weapon``); empty: any label. The core warns when no
    #: detector of a camera it watches reports any of them, as then it can never fire.
    labels: tuple[str, ...] = ()

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        raise NotImplementedError


class Notifier(Component):
    """Delivers an incident to people or systems.

    Raise to have the delivery retried from the durable outbox; each delivery carries the
    idempotency key ``incident.delivery_key(self.name)`` that receivers use to drop duplicates.
    """

    category = "notifier"

    async def notify(self, incident: Incident) -> None:
        raise NotImplementedError


class AccessControl(Component):
    """Bridge to a door system. The core has already checked each command for safety."""

    category = "access_control"

    async def execute(self, command: DoorCommand) -> str:
        """Carry out ``command`` and return the resulting door state, as the hardware reports it."""
        raise NotImplementedError


class VisitorSystem(Component):
    """Bridge to a visitor-management system."""

    category = "visitor_system"

    async def on_site(self) -> list[Visitor]:
        """Visitors signed in and not yet signed out, as the visitor system knows them."""
        raise NotImplementedError

    async def on_emergency(self, scenario: str, roster: list[Visitor], *, exercise: bool) -> str:
        """A lockdown or evacuation started: tell the visitor system (e.g. to stop sign-ins, print
        the roster). Return what was done, for the audit log; the default does nothing."""
        return "not supported by this visitor system"


class Dispatcher(Component):
    """Bridge to emergency dispatch (CAP, 911 partners)."""

    category = "dispatcher"

    async def dispatch(self, incident: Incident) -> None:
        raise NotImplementedError


class EventHandler(Component):
    """Reacts to bus messages on ``topics``. Built once per enabled plugin, configured under
    ``[event_handlers.<kind>]`` when it has options."""

    category = "event_handler"
    topics: ClassVar[tuple[Topic[Any], ...]] = ()

    async def handle(self, message: Message) -> None:
        raise NotImplementedError


ADAPTER_BASES: tuple[type[Component], ...] = (AccessControl, VisitorSystem, Dispatcher)
