"""Detector → tracker → analyzers for frames: the part of the pipeline shared by live cameras and
``campusguard replay``.

Each stage is isolated: a detector, tracker or analyzer that raises or overruns its deadline is
logged against its name and skipped for that frame; the others carry on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from campusguard.sdk import (
    OBSERVATIONS,
    Analyzer,
    Box,
    CameraSourceConfig,
    CoreAPI,
    Detection,
    Detector,
    Frame,
    Observation,
    Track,
    Tracker,
)

from .coverage import CoverageWatch
from .crop import crop_box, cropped, uncropped
from .second_look import SecondLook, Spot, merge

log = logging.getLogger("campusguard.pipeline")


@dataclass
class FrameResult:
    """What the pipeline made of one frame."""

    frame: Frame
    detections: list[Detection] = field(default_factory=list)
    tracks: list[Track] = field(default_factory=list)
    observations: list[Observation] = field(default_factory=list)
    detected: bool = False  # False: no motion, so detection was skipped and the last tracks reused
    looked: list[Box] = field(default_factory=list)  # areas the detectors looked at again (second looks)


@dataclass
class CameraActivity:
    """What detection saw on one camera since the last report (logged so operators see it work)."""

    frames: int = 0
    detected: int = 0
    with_people: int = 0
    most_people: int = 0
    track_ids: set[int] = field(default_factory=set)
    since: float = field(default_factory=time.monotonic)
    reports: int = 0

    def count(self, result: FrameResult) -> None:
        people = sum(1 for d in result.detections if d.label == "person")
        self.frames += 1
        self.detected += result.detected
        self.with_people += people > 0
        self.most_people = max(self.most_people, people)
        self.track_ids.update(t.track_id for t in result.tracks)

    def due(self) -> bool:
        # First report after 10 s, so a new setup shows it works; then once a minute.
        return time.monotonic() - self.since >= (10.0 if self.reports == 0 else 60.0)

    def report(self) -> str:
        seconds = time.monotonic() - self.since
        text = (
            f"{self.frames / seconds:.1f} frames/s, {self.detected} with motion went to detection, people in "
            f"{self.with_people} (up to {self.most_people} at once), {len(self.track_ids)} tracks"
        )
        return text


SECOND_LOOK_MAX_BUSY = 0.5  # share of time detection is busy above which second looks are skipped


@dataclass(frozen=True)
class _View:
    """One picture a detector is shown for a frame: the frame, its motion crop, or a second look."""

    result: FrameResult
    shown: Frame
    area: Box | None  # where ``shown`` lies in the frame; None: it is the whole frame
    second: bool


def applies_to(analyzer: Analyzer, camera_id: str) -> bool:
    """Analyzers name their camera (``camera = "gate"``) or cameras (``cameras = [...]``); none: all."""
    config = analyzer.config
    camera = getattr(config, "camera", None)
    if isinstance(camera, str):
        return camera == camera_id
    cameras = getattr(config, "cameras", None)
    return not cameras or camera_id in cameras


class FrameProcessor:
    def __init__(
        self,
        core: CoreAPI,
        detectors: Callable[[], dict[str, Detector]],
        trackers: Callable[[], dict[str, Tracker]],
        analyzers: Callable[[], dict[str, Analyzer]],
        *,
        deadline: float = 10.0,
        second_look: SecondLook | None = None,
    ) -> None:
        # Callables, not lists: a component that starts late (after NotReady) joins when it is ready.
        self.core = core
        self._detectors = detectors
        self._trackers = trackers
        self._analyzers = analyzers
        self.deadline = deadline
        self._last_tracks: dict[str, list[Track]] = {}
        self.lag: Callable[[], float] = lambda: 0.0  # the scheduler's, when one feeds this processor
        self.waiting: Callable[[], int] = lambda: 0
        self.rate: Callable[[], float] = lambda: 0.0
        self.busy: Callable[[], float] = lambda: 0.0  # the scheduler's share of time detecting
        self.failures: dict[str, int] = {}
        self.coverage = CoverageWatch()  # analyzers no detector of their camera can feed
        self.second_look = second_look  # None: no second looks
        self.activity: dict[str, CameraActivity] = {}

    def _camera(self, camera_id: str) -> CameraSourceConfig:
        return self.core.camera(camera_id) or CameraSourceConfig()

    def detectors_for(self, camera_id: str) -> list[tuple[str, Detector]]:
        wanted = self._camera(camera_id).detectors
        return [(n, d) for n, d in self._detectors().items() if not wanted or n in wanted]

    def tracker_for(self, camera_id: str) -> Tracker | None:
        trackers = self._trackers()
        name = self._camera(camera_id).tracker
        if name is not None:
            return trackers.get(name)
        return next(iter(trackers.values()), None)

    def _failed(self, stage: str, name: str, error: BaseException) -> None:
        self.failures[name] = self.failures.get(name, 0) + 1
        reason = f"took longer than {self.deadline:g}s" if isinstance(error, TimeoutError) else repr(error)
        log.error("%s %r failed (%s); skipped for this frame", stage, name, reason)

    async def _detect(self, name: str, detector: Detector, frames: list[Frame]) -> list[list[Detection]]:
        try:
            detector.lag, detector.waiting, detector.demand = self.lag(), self.waiting(), self.rate()
            results = await asyncio.wait_for(detector.detect(frames), self.deadline)
            if len(results) != len(frames):
                raise ValueError(f"returned {len(results)} lists for {len(frames)} frames")
            return results
        except Exception as exc:
            self._failed("detector", name, exc)
            return [[] for _ in frames]

    async def process(self, frames: Sequence[Frame]) -> list[FrameResult]:
        """Run one batch (frames of different cameras, or consecutive frames of one in a replay)."""
        results = [FrameResult(frame) for frame in frames]
        moving = [r for r in results if r.frame.motion]
        # Where to look: the whole frame, or (motion.crop) the area that moved plus the people tracked.
        crops = {
            id(r): crop_box(
                r.frame, self._last_tracks.get(r.frame.camera_id, []), self._camera(r.frame.camera_id).motion
            )
            for r in moving
        }
        # What each detector is shown, in one batch per detector: each moving frame (or its motion
        # crop), and for a frame detected whole, a closer look where a person vanished in view.
        looks = self._second_looks(moving, crops)
        batches: dict[str, tuple[Detector, list[_View]]] = {}
        for result in moving:
            box = crops[id(result)]
            main = _View(result, cropped(result.frame, box) if box else result.frame, box, second=False)
            result.looked = [spot.area for spot in looks.get(id(result), [])]
            for name, detector in self.detectors_for(result.frame.camera_id):
                views = batches.setdefault(name, (detector, []))[1]
                views.append(main)
                views += [
                    _View(result, cropped(result.frame, spot.area), spot.area, second=True)
                    for spot in looks.get(id(result), [])
                    if not detector.labels or spot.label in detector.labels
                ]
        outputs = await asyncio.gather(
            *(self._detect(name, d, [v.shown for v in views]) for name, (d, views) in batches.items())
        )
        for (_, views), detections in zip(batches.values(), outputs, strict=True):
            for view, found in zip(views, detections, strict=True):
                found = uncropped(found, view.area) if view.area else found
                if view.second:
                    merge(view.result.detections, found)
                else:
                    view.result.detections.extend(found)
        for result in moving:
            result.detected = True
        for result in results:
            await self._track_and_analyze(result)
        return results

    def _second_looks(self, moving: Sequence[FrameResult], crops: dict[int, Box | None]) -> dict[int, list[Spot]]:
        """The spots to look at again, per frame detected whole. A second look never delays another
        camera's first: none while frames wait for detection or detection is busy over half the time."""
        if self.second_look is None or not moving or self.waiting() or self.busy() > SECOND_LOOK_MAX_BUSY:
            return {}
        return {id(r): self.second_look.spots(r.frame) for r in moving if crops[id(r)] is None}

    async def _track_and_analyze(self, result: FrameResult) -> None:
        frame = result.frame
        camera = frame.camera_id
        activity = self.activity.setdefault(camera, CameraActivity())
        tracker = self.tracker_for(camera)
        if result.detected and tracker is not None:
            try:
                # asyncio.timeout, not wait_for: no task per frame (wait_for makes one on 3.11).
                async with asyncio.timeout(self.deadline):
                    result.tracks = await tracker.update(frame, result.detections)
                if self.second_look is not None:
                    self.second_look.update(frame, self._last_tracks.get(camera, []), result.tracks)
                self._last_tracks[camera] = result.tracks
            except Exception as exc:
                self._failed("tracker", tracker.name, exc)
                result.tracks = self._last_tracks.get(camera, [])
        else:
            # Nothing moved: the people standing there are still there (loitering keeps counting).
            result.tracks = self._last_tracks.get(camera, [])
        activity.count(result)
        if activity.due():
            log.info("camera %r: %s", camera, activity.report())
            self.activity[camera] = CameraActivity(reports=activity.reports + 1)
        # One after another, each under its deadline, in the processing task itself: analyzers are
        # quick computations, and a task per analyzer per frame cost more than most of them. What one
        # analyzer saw is published before the next runs, so a hung one delays only its own findings
        # and those after it in this frame, by at most its deadline.
        analyzers = [(name, a) for name, a in self._analyzers().items() if applies_to(a, camera)]
        self.coverage.check(camera, self.detectors_for(camera), analyzers)
        for name, analyzer in analyzers:
            try:
                async with asyncio.timeout(self.deadline):
                    found = await analyzer.analyze(frame, result.tracks)
            except Exception as exc:
                self._failed("analyzer", name, exc)
                continue
            for observation in found:
                result.observations.append(observation)
                log.info(
                    "observation %s on %s%s: confidence %.2f, tracks %s",
                    observation.kind, observation.camera_id, f" zone {observation.zone}" if observation.zone else "",
                    observation.confidence, observation.track_ids,
                )  # fmt: skip
                self.core.bus.publish(OBSERVATIONS, observation)
