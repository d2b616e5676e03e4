"""Shares the detectors among all cameras: the latest frame per camera, served round-robin in
batches, cameras with an open or recent incident ahead of the others.

A camera that sends many frames cannot starve the others: each camera has one slot (its latest
frame, older ones counted as dropped) and the least recently served camera goes next. A camera is
hot while it has an open incident (not yet resolved or dismissed: an incident in progress is what
the site watches; one with no news for ``OPEN_HOT_SECONDS``, left open and forgotten, no longer
counts) and for ``hot_seconds`` after its last incident news. A hot camera counts as
served ``HOT_LEAD`` seconds earlier than it was: it goes ahead,
but a quiet camera that has waited that much longer still goes first, so when detection is
saturated the quiet cameras are slowed, never starved (and can still raise the incident that
would make them hot).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from campusguard.sdk import Frame, Incident, IncidentKind, IncidentStatus, cancel_and_wait
from campusguard.sdk.models import utc_now

from ..rules.jobs import CLOSED

log = logging.getLogger("campusguard.pipeline")

# Health incidents say nothing about what the camera sees: they do not raise its priority.
_NOT_HOT = {IncidentKind.CAMERA_OFFLINE, IncidentKind.CAMERA_ONLINE, IncidentKind.CAMERA_TAMPER}
HOT_LEAD = 1.0  # seconds of head start a camera with a recent incident gets over quiet ones
RATE_WINDOW = 3.0  # seconds over which the demand on detection is measured
OPEN_HOT_SECONDS = 1800.0  # an open incident without news this long stops keeping its camera hot


class DetectionScheduler:
    def __init__(
        self,
        process: Callable[[Sequence[Frame]], Awaitable[Any]],
        *,
        batch_size: int = 4,
        hot_seconds: float = 60.0,
    ) -> None:
        self._process = process
        self.batch_size = batch_size
        self.hot_seconds = hot_seconds
        self._latest: dict[str, Frame] = {}
        self._served: dict[str, float] = {}
        self._hot_until: dict[str, float] = {}
        self._open: dict[str, dict[str, float]] = {}  # camera: {open incident id: monotonic time of its news}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.dropped: dict[str, int] = {}
        self._arrivals: deque[float] = deque()  # when frames were offered, for the demand rate
        self.processed: dict[str, int] = {}
        self._batches: deque[tuple[float, float]] = deque()  # (start, end) of recent batches, for busy()

    # -- inputs (bus handlers) -------------------------------------------------------------------

    async def offer(self, frame: Frame) -> None:
        camera = frame.camera_id
        if camera in self._latest:
            self.dropped[camera] = self.dropped.get(camera, 0) + 1
        self._latest[camera] = frame
        self._arrivals.append(time.monotonic())
        self._wakeup.set()

    async def on_incident(self, incident: Incident) -> None:
        """Every version of an incident comes here: raised, updated, confirmed, resolved."""
        camera = incident.camera_id
        if not camera or incident.kind in _NOT_HOT:
            return
        # When its news happened: an incident read back after a restart may be hours old.
        latest = max((stamp.wall for stamp in incident.stages.values()), default=utc_now())
        news = time.monotonic() - max(0.0, (utc_now() - latest).total_seconds())
        self._hot_until[camera] = max(self._hot_until.get(camera, 0.0), news + self.hot_seconds)
        now = time.monotonic()
        open_ids = {i: t for i, t in self._open.get(camera, {}).items() if now - t < OPEN_HOT_SECONDS}
        self._open[camera] = open_ids  # forgotten ones no longer count: let them go
        if IncidentStatus(incident.status) in CLOSED:
            open_ids.pop(incident.id, None)  # hot_seconds more from this news, then quiet
        else:
            open_ids[incident.id] = news

    def is_hot(self, camera: str, now: float) -> bool:
        if self._hot_until.get(camera, 0.0) > now:
            return True
        return any(now - news < OPEN_HOT_SECONDS for news in self._open.get(camera, {}).values())

    # -- the loop --------------------------------------------------------------------------------

    def next_batch(self) -> list[Frame]:
        """The least recently served first, hot cameras with a head start; one frame per camera."""
        now = time.monotonic()

        def turn(camera: str) -> float:
            served = self._served.get(camera, 0.0)
            return served - HOT_LEAD if self.is_hot(camera, now) else served

        order = sorted(self._latest, key=turn)
        batch = [self._latest.pop(camera) for camera in order[: self.batch_size]]
        for frame in batch:
            self._served[frame.camera_id] = now
        return batch

    def rate(self) -> float:
        """Frames per second offered to detection over the last few seconds, all cameras together."""
        now = time.monotonic()
        while self._arrivals and self._arrivals[0] < now - RATE_WINDOW:
            self._arrivals.popleft()
        return len(self._arrivals) / RATE_WINDOW

    def busy(self) -> float:
        """Share of the last few seconds detection spent processing batches (0..1)."""
        now = time.monotonic()
        while self._batches and self._batches[0][1] < now - RATE_WINDOW:
            self._batches.popleft()
        spent = sum(end - max(start, now - RATE_WINDOW) for start, end in self._batches)
        return min(1.0, spent / RATE_WINDOW)

    def waiting(self) -> int:
        """Frames waiting for detection (one per camera at most)."""
        return len(self._latest)

    def lag(self) -> float:
        """Seconds the oldest frame still waiting for detection has waited (0: none waits)."""
        if not self._latest:
            return 0.0
        now = time.monotonic()
        return max(0.0, max(now - frame.captured.monotonic for frame in self._latest.values()))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="detection-scheduler")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            if not self._latest:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self.next_batch()
            started = time.monotonic()
            try:
                await self._process(batch)
            except Exception:
                log.exception("detection batch failed")
            self._batches.append((started, time.monotonic()))
            for frame in batch:
                self.processed[frame.camera_id] = self.processed.get(frame.camera_id, 0) + 1
