"""One runner per started camera: takes its frames, gates them on motion, watches its health.

- A stall (no frame for ``stall_timeout``) raises one ``camera_offline`` incident; the first frame
  after it resolves that incident and raises one ``camera_online`` notice (already resolved: nothing
  for a person to handle). Both also go on the ``camera_events`` topic as availability events.
- Motion and tamper checks run in the camera's own worker thread, never on the event loop.
- Frames go out on the ``frames`` topic (drop-oldest: detection always sees the latest).
- ``AuthFailed`` from the source stops that camera (``failed``); other cameras never notice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from campusguard.sdk import (
    CAMERA_AVAILABILITY,
    CAMERA_EVENTS,
    FRAMES,
    AuthFailed,
    CameraEvent,
    CameraEventKind,
    CameraSource,
    CameraSourceConfig,
    CoreAPI,
    Frame,
    Incident,
    IncidentKind,
    IncidentStatus,
    Severity,
    cancel_and_wait,
)

from .motion import MotionGate, mark
from .tamper import TamperChange, TamperMonitor

log = logging.getLogger("campusguard.cameras")

STATUS_INTERVAL = 60.0  # seconds between the status lines each camera logs

OnFatal = Callable[[str], Awaitable[None]]


class CameraRunner:
    def __init__(self, source: CameraSource, core: CoreAPI, on_fatal: OnFatal) -> None:
        self.source = source
        self.name = source.name
        self.core = core
        self._on_fatal = on_fatal
        config = source.config
        self.settings = config if isinstance(config, CameraSourceConfig) else CameraSourceConfig()
        self.motion = MotionGate(self.settings.motion)
        self.tamper = TamperMonitor(self.settings.tamper) if self.settings.tamper.enabled else None
        # One thread per camera: its image checks never wait behind another camera's.
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"camera:{self.name}")
        self._tasks: list[asyncio.Task[None]] = []
        self.last_frame_at = time.monotonic()
        self.offline = False
        self.frames_seen = 0
        self.frames_moving = 0
        self.incidents: list[Incident] = []
        self._offline_incident: Incident | None = None

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._consume(), name=f"camera:{self.name}"),
            asyncio.create_task(self._watch(), name=f"camera-watchdog:{self.name}"),
        ]

    async def stop(self) -> None:
        await cancel_and_wait(*self._tasks)
        self._tasks = []
        self._worker.shutdown(wait=False, cancel_futures=True)

    # -- frames ----------------------------------------------------------------------------------

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for frame in self.source.frames():
                self.last_frame_at = time.monotonic()
                self.frames_seen += 1
                if self.offline:
                    await self._back_online()
                await loop.run_in_executor(self._worker, self._inspect, frame)
                self.core.bus.publish(FRAMES, frame)
        except AuthFailed as exc:
            await self._on_fatal(str(exc))
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("camera %r stopped delivering frames: %s", self.name, exc)
            await self._on_fatal(f"{type(exc).__name__}: {exc}")
            return
        log.info("camera %r: stream ended", self.name)

    def _inspect(self, frame: Frame) -> None:
        """Runs in the camera's worker thread: motion regions, then tamper checks."""
        image = frame.image
        if image is None:
            return
        result = self.motion.update(image)
        mark(frame, result)
        self.frames_moving += result.motion
        if self.tamper is not None:
            change = self.tamper.update(image, time.monotonic())
            if change is not None:
                self._tamper_changed(change)

    def _tamper_changed(self, change: TamperChange) -> None:
        loop = self._loop
        if change.active:
            title = f"Camera {self.name!r} {change.condition}: {change.detail}"
            asyncio.run_coroutine_threadsafe(self._raise(IncidentKind.CAMERA_TAMPER, Severity.MODERATE, title), loop)
        else:
            log.warning("camera %r: %s condition cleared (%s)", self.name, change.condition, change.detail)

    @property
    def _loop(self) -> asyncio.AbstractEventLoop:
        return self._tasks[0].get_loop()

    # -- health ----------------------------------------------------------------------------------

    async def _watch(self) -> None:
        timeout = self.settings.stall_timeout
        reported = (time.monotonic(), 0, 0)  # (when, frames seen, frames with motion)
        while True:
            await asyncio.sleep(min(0.25, timeout / 4))
            if time.monotonic() - reported[0] >= STATUS_INTERVAL:
                reported = self._log_status(*reported)
            silent = time.monotonic() - self.last_frame_at
            if silent >= timeout and not self.offline:
                self.offline = True
                self._publish_availability(False)
                reason = self.source.stats.last_error or "no frames"
                self._offline_incident = await self._raise(
                    IncidentKind.CAMERA_OFFLINE,
                    Severity.MODERATE,
                    f"Camera {self.name!r} offline: no frame for {silent:.0f} s ({reason})",
                )

    def _log_status(self, since: float, seen: int, moving: int) -> tuple[float, int, int]:
        now, stats = time.monotonic(), self.source.stats
        frames = self.frames_seen - seen
        log.info(
            "camera %r: %.1f fps delivered, motion in %d%% of frames, %d decoded, %d dropped, %d reconnects%s",
            self.name, frames / (now - since), 100 * (self.frames_moving - moving) / max(frames, 1),
            stats.decoded, stats.dropped, stats.reconnects, " (offline)" if self.offline else "",
        )  # fmt: skip
        return now, self.frames_seen, self.frames_moving

    async def _back_online(self) -> None:
        self.offline = False
        self._publish_availability(True)
        offline, self._offline_incident = self._offline_incident, None
        resolve = getattr(self.core, "resolve_incident", None)  # the embedded core's; a stub core has none
        if offline is not None and resolve is not None:
            await resolve(offline.id, actor=f"camera:{self.name}", note="frames arrive again")
        await self._raise(
            IncidentKind.CAMERA_ONLINE, Severity.INFO, f"Camera {self.name!r} is back online", IncidentStatus.RESOLVED
        )

    def _publish_availability(self, online: bool) -> None:
        event = CameraEvent(
            camera_id=self.name, topic=CAMERA_AVAILABILITY, kind=CameraEventKind.AVAILABILITY, active=online
        )
        self.core.bus.publish(CAMERA_EVENTS, event)

    async def _raise(
        self, kind: IncidentKind, severity: Severity, title: str, status: IncidentStatus = IncidentStatus.NEW
    ) -> Incident:
        incident = Incident(
            kind=kind, severity=severity, title=title, camera_id=self.name, source=f"camera:{self.name}", status=status
        )  # fmt: skip
        self.incidents.append(incident)
        log.warning("%s", title)
        await self.core.raise_incident(incident)
        return incident
