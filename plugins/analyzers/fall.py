"""Fall / medical analyzer: a quick change from upright to lying, then lying still for ``stillness_seconds``.

Per frame, each person gets three posture signals, each measured against the last frame where they
stood upright:

- ``torso``: the hip→shoulder line is more than ``torso_angle`` degrees from vertical (needs keypoints);
- ``aspect``: the box is wider than tall (``aspect_ratio``);
- ``drop``: the hips (or, without keypoints, the box centre) went down by ``hip_drop`` standing heights.

Lying means two signals, one of them the torso whenever the torso can be measured: someone sitting on
the ground has dropped and may have a wide box, but their torso is upright. A fall is a lying frame no
more than ``fall_seconds`` after an upright one; lying down slowly (sitting first, then reclining) is not
a fall. It is reported once, when the person has then stayed still (pose shift under ``still_tolerance``
standing heights) for ``stillness_seconds``; standing up again ends the episode.

Thresholds: 60 degrees, width/height 1 and a hip drop of 0.35 standing heights. Falling sideways drops
the hips about 0.5 standing heights, towards the camera more; a squat drops them about 0.3. On the real
campus clip (MoveNet, 5 and 10 fps) walking people never went past 46 degrees or a width/height of
0.68, and no frame raised a single signal. The NFD temporal classifier (``nfd-fall.onnx``) is not used:
on the synthetic falls built from a real MoveNet skeleton it gave P(fallen) 0.04-0.65, missing most,
where these rules found all of them; see the tests.

Limits, from high campus cameras: the torso angle is the angle in the image, so a fall straight away
from the camera looks upright and foreshortened (missed when keypoints are visible); a camera looking
straight down sees no drop and no upright box at all (unsupported). Pose models lose people lying on
the ground more often than standing ones; time without a detection counts as still, so the report
waits for the person to be seen again. Measured with a real person's pixels rotated onto the ground
(``tests/test_fall_footage.py``): MoveNet at 256 px on a whole 640x480 frame never finds them lying
(~100 px long), so the fall is missed; on the camera's motion crop (``motion.crop``, the default) or
at ``input_size = 512`` it does. A busy view whose motion covers over ``crop_max_area`` of the frame
is detected whole: where falls matter there, raise the detector's ``input_size``.

Trackers often give a falling person a new id (the narrow standing box and the wide lying one barely
overlap; ByteTrack does so with a real MoveNet skeleton): a new track that is not upright takes over
the upright frame of a track that vanished where it stands (its id is added to the evidence).
Someone first seen lying has nothing to fall from: not reported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from campusguard.sdk import Analyzer, Box, ComponentContext, Evidence, Frame, Observation, Track

from . import pose

_SIT_UP_GRACE = 2.0  # seconds not lying (sat up, crawled away) that end a fall waiting for stillness


@dataclass(frozen=True)
class _Sample:
    at: float
    box: Box
    keypoints: pose.Keypoints | None


@dataclass(frozen=True)
class _Posture:
    upright: bool
    lying: bool
    torso_angle: float | None
    aspect_ratio: float
    hip_drop: float
    signals: list[str]

    def attributes(self) -> dict[str, object]:
        found: dict[str, object] = {"aspect_ratio": round(self.aspect_ratio, 3), "hip_drop": round(self.hip_drop, 3)}
        if self.torso_angle is not None:
            found["torso_angle"] = round(self.torso_angle, 1)
        return {**found, "signals": self.signals}


@dataclass
class _Person:
    seen: float = -math.inf
    upright: _Sample | None = None  # the last frame they stood upright: the reference for the drop
    down: bool = False  # fell, waiting for stillness (or already reported)
    reported: bool = False
    fall_seconds: float = 0.0  # from the last upright frame to the first lying one
    anchor: _Sample | None = None  # the pose stillness is measured against
    still_since: float = 0.0
    lying_at: float = 0.0
    previous_id: int | None = None  # the track this person had before the tracker lost them falling


class FallAnalyzer(Analyzer):
    """Emits ``medical_fall`` once per fall: upright, then lying within ``fall_seconds``, then still."""

    kind = "fall"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        cameras: list[str] = Field(default_factory=list, description="cameras to watch; empty: all")
        labels: list[str] = Field(default_factory=lambda: ["person"], description="track labels that are people")
        stillness_seconds: float = Field(5.0, gt=0, description="how long the fallen person stays still")
        fall_seconds: float = Field(1.5, gt=0, description="most seconds from the last upright frame to lying")
        torso_angle: float = Field(60.0, gt=0, lt=180, description="degrees from vertical that count as lying")
        upright_angle: float = Field(30.0, gt=0, lt=90, description="degrees from vertical that count as upright")
        aspect_ratio: float = Field(1.0, gt=0, description="box width/height above which the box is lying")
        upright_aspect: float = Field(0.8, gt=0, description="box width/height below which it is upright")
        hip_drop: float = Field(0.35, gt=0, description="fall of the hips, in standing heights")
        still_tolerance: float = Field(0.1, gt=0, description="pose shift, in standing heights, still counted still")
        keypoint_confidence: float = Field(0.3, ge=0, le=1)
        forget_seconds: float = Field(30.0, gt=0, description="state of a track unseen this long is dropped")

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        self.labels = tuple(self.settings.labels)
        self._people: dict[tuple[str, int], _Person] = {}

    @property
    def settings(self) -> FallAnalyzer.Config:
        assert isinstance(self.config, FallAnalyzer.Config)
        return self.config

    async def start(self) -> None:
        self._people.clear()

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        config = self.settings
        if config.cameras and frame.camera_id not in config.cameras:
            return []
        now = frame.captured.monotonic  # not the track's own time: reused tracks (no motion) are still
        found = []
        people = [t for t in tracks if t.label in config.labels]
        present = {t.track_id for t in people}
        for track in people:
            person = self._people.setdefault((frame.camera_id, track.track_id), _Person())
            observation = self._update(person, _Sample(now, track.box, track.keypoints), frame, track, present)
            if observation is not None:
                found.append(observation)
        self._people = {k: p for k, p in self._people.items() if now - p.seen <= config.forget_seconds}
        return found

    def posture(self, sample: _Sample, reference: _Sample | None) -> _Posture:
        """The posture in one frame, the drop measured against ``reference`` (standing upright)."""
        config = self.settings
        kc = config.keypoint_confidence
        angle = pose.torso_angle(sample.keypoints, kc)
        aspect = pose.aspect_ratio(sample.box)
        drop = 0.0
        if reference is not None:
            now, before = pose.hip_point(sample.keypoints, kc), pose.hip_point(reference.keypoints, kc)
            if now is None or before is None:  # without hips in both, the box centre stands in
                now, before = sample.box.center, reference.box.center
            drop = (now[1] - before[1]) / max(reference.box.height, 1e-6)
        signals = [
            name
            for name, on in (
                ("torso", angle is not None and angle >= config.torso_angle),
                ("aspect", aspect >= config.aspect_ratio),
                ("drop", drop >= config.hip_drop),
            )
            if on
        ]
        lying = len(signals) >= 2 and (angle is None or "torso" in signals)
        upright = aspect <= config.upright_aspect and (angle is None or angle <= config.upright_angle)
        return _Posture(upright, lying, angle, aspect, drop, signals)

    def _update(
        self, person: _Person, sample: _Sample, frame: Frame, track: Track, present: set[int]
    ) -> Observation | None:
        config = self.settings
        if sample.at <= person.seen:
            return None  # the same frame twice
        person.seen = sample.at
        now = self.posture(sample, person.upright)
        if person.upright is None and not now.upright and self._hand_over(person, frame.camera_id, sample, present):
            now = self.posture(sample, person.upright)
        if now.upright:
            person.upright, person.down, person.reported = sample, False, False  # (got) up: a new episode later
            return None
        if not person.down:
            if now.lying and person.upright is not None and sample.at - person.upright.at <= config.fall_seconds:
                person.down, person.anchor, person.still_since, person.lying_at = True, sample, sample.at, sample.at
                person.fall_seconds = sample.at - person.upright.at
            return None
        if not now.lying:
            if sample.at - person.lying_at > _SIT_UP_GRACE and not person.reported:
                person.down = False  # sat up or moved off: not lying still
            person.anchor, person.still_since = sample, sample.at
            return None
        person.lying_at = sample.at
        assert person.anchor is not None and person.upright is not None
        standing = person.upright.box.height
        shift = pose.pose_shift(
            (person.anchor.box, person.anchor.keypoints),
            (sample.box, sample.keypoints),
            config.keypoint_confidence,
            standing,
        )
        if shift > config.still_tolerance:
            person.anchor, person.still_since = sample, sample.at
        still = sample.at - person.still_since
        if person.reported or still < config.stillness_seconds:
            return None
        person.reported = True
        return self._observation(frame, track, person, now, still)

    def _hand_over(self, person: _Person, camera: str, sample: _Sample, present: set[int]) -> bool:
        """A new track that is not upright may be someone the tracker lost as they fell (a narrow standing
        box and a wide lying one barely overlap): take over the upright frame of the nearest track that
        stood upright within ``fall_seconds``, with its feet within a standing height of this box, and is
        not in this frame."""
        best: tuple[float, _Person, int] | None = None
        for (cam, track_id), other in self._people.items():
            if cam != camera or track_id in present or other.upright is None or other.down:
                continue
            if sample.at - other.upright.at > self.settings.fall_seconds:
                continue
            standing = other.upright.box
            feet = ((standing.x1 + standing.x2) / 2, standing.y2)
            distance = math.dist(sample.box.center, feet) / max(standing.height, 1e-6)
            if distance <= 1.0 and (best is None or distance < best[0]):
                best = (distance, other, track_id)
        if best is None:
            return False
        _, other, person.previous_id = best
        person.upright, other.upright = other.upright, None  # one fall per lost track
        return True

    def _observation(self, frame: Frame, track: Track, person: _Person, now: _Posture, still: float) -> Observation:
        assert person.upright is not None
        return Observation(
            kind="medical_fall",
            camera_id=frame.camera_id,
            confidence=0.6 + 0.1 * len(now.signals),  # two signals 0.8, all three 0.9
            track_ids=[track.track_id],
            evidence=Evidence(
                frame_id=frame.id,
                camera_id=frame.camera_id,
                boxes=[track.box, person.upright.box],  # now, and standing before the fall
                track_ids=[track.track_id] + ([person.previous_id] if person.previous_id is not None else []),
                scores=[track.score],
            ),
            captured=frame.captured,
            attributes={
                **now.attributes(),
                "fall_seconds": round(person.fall_seconds, 2),
                "still_seconds": round(still, 2),
            },
        )
