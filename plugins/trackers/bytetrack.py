"""Multi-object tracking with ByteTrack (or SORT / OC-SORT) from the ``trackers`` package.

    [trackers.main]
    type = "bytetrack"
    algorithm = "bytetrack"      # or "sort", "ocsort"
    activation_threshold = 0.25  # pose models score people 0.2-0.5: the library's 0.7 tracks nobody
    lost_seconds = 2.0

One tracker state per camera (``frame.camera_id``), and within a camera one library tracker per
label in ``labels``, so a person never inherits a car's id. Track ids are unique per camera.

Detections of labels *not* in ``labels`` (a weapon, a bag) are not dropped: the weapon analyzer must
see them on the very frame they appear, and ByteTrack only confirms a track on its second frame. They
come back as :class:`Track` objects too, associated frame to frame by nearest centre (``other_labels =
"associate"``), returned from their first sighting; ``other_labels = "drop"`` ignores them.

The tracker keeps the canonical :class:`Track` objects and returns them, so a flag an analyzer sets
(``track.flags.add("armed")``) is still there on the next frame, and for as long as the library keeps
the track alive (``lost_seconds`` after it was last seen). Only tracks seen in the current frame are
returned; a briefly unseen one comes back as the same object, its flags and history intact.

When the library gives a flagged person a new id (``flag_handover_seconds``), the new track nearest
to where the flagged one was lost inherits its flags. That is a guess, so it is made once per lost
track, and undone when the lost track is seen again: then the heir was someone else (measured on
the campus clip with a marked weapon: without these two rules the ``armed`` flag spread to three
bystanders over 20 s).

Cost (measured, one core): ~0.5 ms per frame for 10 people, ~0.9 ms for 20 (OC-SORT ~1.5x), growing
with the crowd. Up to ``INLINE_MAX`` detections it runs on the event loop, where a thread hop would
cost about as much as the work; a bigger crowd is tracked in a worker thread.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from campusguard.sdk import Box, ComponentContext, Detection, Frame, Track, Tracker, TrackPoint

if TYPE_CHECKING:
    from trackers.core.base import BaseTracker

DEFAULT_FRAME_RATE = 5.0  # the camera's default detect_fps
INLINE_MAX = 16  # detections tracked on the event loop (under ~1 ms); more go to a thread


class ByteTrackConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    algorithm: Literal["bytetrack", "sort", "ocsort"] = "bytetrack"
    activation_threshold: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="lowest score that starts a track (bytetrack: high_threshold too; ocsort: high_threshold only)",
    )
    high_threshold: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="bytetrack: scores below only revive lost tracks (second stage); ocsort: scores below are ignored",
    )
    iou_threshold: float = Field(default=0.1, ge=0, le=1, description="least overlap that continues a track")
    lost_seconds: float = Field(default=2.0, ge=0, description="how long an unseen track keeps its id and flags")
    min_frames: int = Field(default=2, ge=1, description="consecutive sightings before a track gets an id")
    frame_rate: float | None = Field(
        default=None, gt=0, description="motion model's frame rate; none: the camera's detect_fps"
    )
    labels: list[str] = Field(default_factory=lambda: ["person"], description="labels tracked by the algorithm")
    other_labels: Literal["associate", "drop"] = Field(
        default="associate", description="other labels: returned from their first sighting, or dropped"
    )
    history: int = Field(default=64, ge=1, description="track points kept per track")
    flag_handover_seconds: float = Field(
        default=3.0,
        ge=0,
        description="a new track where a flagged one was lost this recently (within one box size) inherits its "
        "flags (an armed person whose id switched stays armed); once per lost track, and undone if the lost "
        "track is seen again; 0: never",
    )


def _engine(config: ByteTrackConfig, frame_rate: float) -> BaseTracker:
    # Imported here, not at the top: listing plugins must not load numpy, OpenCV and the trackers.
    from trackers import ByteTrackTracker, OCSORTTracker, SORTTracker

    # The library counts its lost buffer in 30 fps frames and converts it to seconds itself.
    buffer = math.ceil(config.lost_seconds * 30)
    if config.algorithm == "sort":
        return SORTTracker(
            lost_track_buffer=buffer,
            frame_rate=frame_rate,
            track_activation_threshold=config.activation_threshold,
            minimum_consecutive_frames=config.min_frames,
            minimum_iou_threshold=config.iou_threshold,
        )
    if config.algorithm == "ocsort":
        return OCSORTTracker(
            lost_track_buffer=buffer,
            frame_rate=frame_rate,
            minimum_consecutive_frames=config.min_frames,
            minimum_iou_threshold=config.iou_threshold,
            high_conf_det_threshold=config.high_threshold,
        )
    return ByteTrackTracker(
        lost_track_buffer=buffer,
        frame_rate=frame_rate,
        track_activation_threshold=config.activation_threshold,
        minimum_consecutive_frames=config.min_frames,
        minimum_iou_threshold=config.iou_threshold,
        high_conf_det_threshold=config.high_threshold,
    )


@dataclass
class _CameraState:
    frame_rate: float
    engines: dict[str, BaseTracker] = field(default_factory=dict)
    tracks: dict[tuple[str, int], Track] = field(default_factory=dict)  # (label, library id) -> canonical
    others: dict[int, Track] = field(default_factory=dict)  # labels outside `labels`, by our id
    next_id: int = 1
    last_time: float | None = None
    departed: list[Track] = field(default_factory=list)  # flagged tracks the library forgot, for handover
    # A flag handover is a guess that a new id is the same person: heir track id -> (lost track, flags
    # it got). Each lost track hands over once; if it is seen again, the guess was wrong and is undone.
    heirs: dict[int, tuple[Track, frozenset[str]]] = field(default_factory=dict)
    # A cancelled update's thread may still be running when the next frame comes: one step at a time.
    lock: threading.Lock = field(default_factory=threading.Lock)

    def allocate(self) -> int:
        self.next_id += 1
        return self.next_id - 1


class ByteTrack(Tracker):
    kind = "bytetrack"
    Config = ByteTrackConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, ByteTrackConfig)
        self.cfg = config
        self._cameras: dict[str, _CameraState] = {}

    async def stop(self) -> None:
        self._cameras.clear()

    async def update(self, frame: Frame, detections: Sequence[Detection]) -> list[Track]:
        if len(detections) <= INLINE_MAX:
            return self.step(frame, detections)
        return await asyncio.to_thread(self.step, frame, detections)

    def step(self, frame: Frame, detections: Sequence[Detection]) -> list[Track]:
        """The synchronous update (also for benchmarks and replays)."""
        state = self._state(frame.camera_id)
        with state.lock:
            return self._step(state, frame, detections)

    def _step(self, state: _CameraState, frame: Frame, detections: Sequence[Detection]) -> list[Track]:
        now = frame.captured.monotonic
        # The library skips a frame whose time is not after the last one; keep the clock moving.
        if state.last_time is not None and now <= state.last_time:
            now = state.last_time + 1e-3
        state.last_time = now
        out: list[Track] = []
        by_label: dict[str, list[Detection]] = {label: [] for label in self.cfg.labels}
        others: list[Detection] = []
        for det in detections:
            (by_label[det.label] if det.label in by_label else others).append(det)
        for label, dets in by_label.items():
            out.extend(self._track_label(state, frame, label, dets, now))
        if self.cfg.other_labels == "associate":
            out.extend(self._associate_others(state, frame, others, now))
        return out

    def _state(self, camera_id: str) -> _CameraState:
        state = self._cameras.get(camera_id)
        if state is None:
            rate = self.cfg.frame_rate
            if rate is None:
                camera = self.context.core.camera(camera_id)
                rate = camera.detect_fps if camera is not None else DEFAULT_FRAME_RATE
            state = self._cameras[camera_id] = _CameraState(frame_rate=rate)
        return state

    def _track_label(
        self, state: _CameraState, frame: Frame, label: str, dets: list[Detection], now: float
    ) -> list[Track]:
        import numpy as np
        import supervision as sv

        engine = state.engines.get(label)
        if engine is None:
            engine = state.engines[label] = _engine(self.cfg, state.frame_rate)
        if dets:
            xyxy = np.array([[d.box.x1, d.box.y1, d.box.x2, d.box.y2] for d in dets], dtype=np.float32)
            scores = np.array([d.score for d in dets], dtype=np.float32)
        else:
            xyxy, scores = np.empty((0, 4), dtype=np.float32), np.empty((0,), dtype=np.float32)
        # The library may reorder its output: carry each detection's index to find its keypoints.
        result = engine.update(
            sv.Detections(xyxy=xyxy, confidence=scores, data={"i": np.arange(len(dets))}), timestamp=now
        )
        indices = np.asarray(result.data.get("i", np.empty(0, dtype=int)))
        ids = result.tracker_id if result.tracker_id is not None else np.empty(0, dtype=int)
        # Not confirmed yet, or a low score that matched nothing: -1.
        matched = [((label, i), dets[d]) for d, i in zip(indices.tolist(), ids.tolist(), strict=True) if i >= 0]
        seen_keys = {key for key, _ in matched}
        seen = [self._observe(state, frame, key, det, seen_keys) for key, det in matched]
        # Forget what the library forgot (lost longer than the buffer); flagged ones wait for a handover.
        alive = {int(t.tracker_id) for t in engine.tracks}
        for key in [k for k in state.tracks if k[0] == label and k[1] not in alive]:
            gone = state.tracks.pop(key)
            state.heirs.pop(gone.track_id, None)
            if gone.flags and self.cfg.flag_handover_seconds > 0:
                state.departed.append(gone)
        return seen

    def _observe(
        self, state: _CameraState, frame: Frame, key: tuple[str, int], det: Detection, seen_now: set[tuple[str, int]]
    ) -> Track:
        track = state.tracks.get(key)
        if track is None:
            track = state.tracks[key] = self._new_track(state, frame, det)
            self._hand_over_flags(state, frame, track, seen_now)
        else:
            self._refresh(track, frame, det)
            self._take_back_flags(state, frame, track)
        self._remember(track, det, frame)
        return track

    def _new_track(self, state: _CameraState, frame: Frame, det: Detection) -> Track:
        return Track(
            track_id=state.allocate(),
            camera_id=frame.camera_id,
            label=det.label,
            box=det.box,
            score=det.score,
            first_seen=frame.captured,
            last_seen=frame.captured,
            keypoints=det.keypoints,
        )

    def _hand_over_flags(self, state: _CameraState, frame: Frame, track: Track, seen_now: set[tuple[str, int]]) -> None:
        """A new id where a flagged track was just lost is most likely the same person (an id switch).

        Only tracks not seen in this frame count, so someone standing next to an armed person who is
        still tracked never inherits the flag.
        """
        window = self.cfg.flag_handover_seconds
        if window <= 0:
            return
        now = frame.captured.monotonic
        state.departed = [t for t in state.departed if now - t.last_seen.monotonic <= window]
        lost = [t for k, t in state.tracks.items() if t.flags and k not in seen_now and t is not track]
        handed = {id(origin) for origin, _ in state.heirs.values()}  # each lost track hands over once
        candidates = [
            t for t in (*lost, *state.departed)
            if t.label == track.label and now - t.last_seen.monotonic <= window and id(t) not in handed
        ]  # fmt: skip
        if not candidates:
            return
        nearest = min(candidates, key=lambda t: _centre_distance(t.box, track.box))
        if _centre_distance(nearest.box, track.box) < 1.0:
            track.flags |= nearest.flags
            state.heirs[track.track_id] = (nearest, frozenset(nearest.flags))
            self.log.info(
                "camera %r: track %d takes over %s from lost track %d",
                frame.camera_id, track.track_id, sorted(nearest.flags), nearest.track_id,
            )  # fmt: skip

    def _take_back_flags(self, state: _CameraState, frame: Frame, seen: Track) -> None:
        """``seen`` was lost and is back: whoever inherited its flags was someone else after all."""
        for heir_id, (origin, flags) in list(state.heirs.items()):
            if origin is not seen:
                continue
            del state.heirs[heir_id]
            heir = next((t for t in state.tracks.values() if t.track_id == heir_id), None)
            if heir is not None:
                heir.flags -= flags
                self.log.info(
                    "camera %r: track %d is back; track %d gives %s back",
                    frame.camera_id, seen.track_id, heir_id, sorted(flags),
                )  # fmt: skip

    @staticmethod
    def _refresh(track: Track, frame: Frame, det: Detection) -> None:
        track.box = det.box
        track.score = det.score
        track.keypoints = det.keypoints
        track.last_seen = frame.captured

    def _remember(self, track: Track, det: Detection, frame: Frame) -> None:
        track.history.append(TrackPoint(at=frame.captured.monotonic, box=det.box, keypoints=det.keypoints))
        if len(track.history) > self.cfg.history:
            del track.history[: len(track.history) - self.cfg.history]

    def _associate_others(self, state: _CameraState, frame: Frame, dets: list[Detection], now: float) -> list[Track]:
        """Nearest-centre matching for labels the algorithm does not track: every detection is returned."""
        for track_id in [i for i, t in state.others.items() if now - t.last_seen.monotonic > self.cfg.lost_seconds]:
            del state.others[track_id]
        pairs: list[tuple[float, int, int]] = []
        for d, det in enumerate(dets):
            for track_id, track in state.others.items():
                if track.label == det.label:
                    cost = _centre_distance(track.box, det.box)
                    if cost < 1.0:  # within one box size of where it was
                        pairs.append((cost, d, track_id))
        matched: dict[int, int] = {}
        used: set[int] = set()
        for _, d, track_id in sorted(pairs):
            if d not in matched and track_id not in used:
                matched[d] = track_id
                used.add(track_id)
        out: list[Track] = []
        for d, det in enumerate(dets):
            if d in matched:
                track = state.others[matched[d]]
                self._refresh(track, frame, det)
            else:
                track = self._new_track(state, frame, det)
                state.others[track.track_id] = track
            self._remember(track, det, frame)
            out.append(track)
        return out


def _centre_distance(a: Box, b: Box) -> float:
    """Distance between centres in units of the larger side of ``a`` (0: same place)."""
    (ax, ay), (bx, by) = a.center, b.center
    return math.hypot(ax - bx, ay - by) / max(a.width, a.height, 1.0)
