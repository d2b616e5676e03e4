"""Fight analyzer: people close together whose limbs keep moving fast while their bodies stay put.

Limb speed is the fastest wrist or ankle relative to the body centre, in body sizes per second,
measured between frames at least ``_STEP`` apart (so that keypoint jitter does not grow with the frame
rate), and summarised as the median over ``window_seconds`` (so that one glitch, such as a left/right
swap, does not count as a blow). On the real campus clip people walking reach a median of 0.8 body
sizes/s at most; the default threshold, 1.5, is about twice that. A person is *active* when that median
is over ``limb_speed`` and their body moves slower than ``max_body_speed`` (joggers side by side swing
their limbs fast too, but they travel). Two people within ``max_distance`` body sizes of each other,
both active (or one, with ``both_active = false``), make a fight: reported once per episode; people
joining a running episode join it silently; it ends after ``cooldown_seconds`` without a fighting pair.

Needs keypoints (a pose detector) at 5 frames per second or more: a slower rate aliases the swings away.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import combinations

from pydantic import BaseModel, ConfigDict, Field

from campusguard.sdk import Analyzer, Box, ComponentContext, Evidence, Frame, Observation, Track

from . import pose

_STEP = 0.2  # seconds between the two samples a speed is measured on


@dataclass
class _Motion:
    samples: deque[tuple[float, Box, pose.Keypoints | None]] = field(default_factory=deque)
    speeds: deque[tuple[float, float, float]] = field(default_factory=deque)  # (time, limb, body) speeds
    seen: float = -math.inf

    def add(self, at: float, box: Box, keypoints: pose.Keypoints | None, min_score: float, window: float) -> None:
        if at <= self.seen:
            return
        self.seen = at
        earlier = [s for s in self.samples if at - s[0] >= _STEP - 1e-6]
        if earlier:
            before, after = earlier[-1], (at, box, keypoints)
            limb = pose.limb_speed(before, after, min_score)
            if limb is not None:
                c0, c1 = pose.body_centre(before[2], before[1], min_score), pose.body_centre(keypoints, box, min_score)
                body = math.dist(c0, c1) / (at - before[0]) / pose.body_scale(box)
                self.speeds.append((at, limb, body))
        self.samples.append((at, box, keypoints))
        while self.samples and at - self.samples[0][0] > window + _STEP:
            self.samples.popleft()
        while self.speeds and at - self.speeds[0][0] > window:
            self.speeds.popleft()

    def summary(self, window: float) -> tuple[float, float] | None:
        """Median (limb, body) speed over the window, or None while the window is not covered well enough."""
        if len(self.speeds) < 3 or self.seen - self.speeds[0][0] < 0.6 * window:
            return None
        return statistics.median(s[1] for s in self.speeds), statistics.median(s[2] for s in self.speeds)


@dataclass
class _Episode:
    camera_id: str
    track_ids: set[int]
    last: float


class FightAnalyzer(Analyzer):
    """Emits ``fight`` once per episode, with the track ids of the people involved."""

    kind = "fight"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        cameras: list[str] = Field(default_factory=list, description="cameras to watch; empty: all")
        labels: list[str] = Field(default_factory=lambda: ["person"], description="track labels that are people")
        max_distance: float = Field(1.0, gt=0, description="box centres this close, in body sizes, are together")
        limb_speed: float = Field(1.5, gt=0, description="median limb speed, body sizes/s, that counts as fast")
        window_seconds: float = Field(1.5, gt=0, description="how long the limb speed must stay high")
        max_body_speed: float = Field(1.0, gt=0, description="body sizes/s over which someone is travelling")
        both_active: bool = Field(True, description="both people flail (false: one, next to anyone)")
        cooldown_seconds: float = Field(10.0, ge=0, description="calm time that ends an episode")
        keypoint_confidence: float = Field(0.3, ge=0, le=1)

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        self.labels = tuple(self.settings.labels)
        self._motion: dict[tuple[str, int], _Motion] = {}
        self._episodes: list[_Episode] = []

    @property
    def settings(self) -> FightAnalyzer.Config:
        assert isinstance(self.config, FightAnalyzer.Config)
        return self.config

    async def start(self) -> None:
        self._motion.clear()
        self._episodes.clear()

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        config = self.settings
        if config.cameras and frame.camera_id not in config.cameras:
            return []
        now, camera = frame.captured.monotonic, frame.camera_id
        people = [t for t in tracks if t.label in config.labels]
        active: dict[int, float] = {}  # track id: median limb speed, for people who are flailing in place
        present: dict[int, float] = {}
        for track in people:
            motion = self._motion.setdefault((camera, track.track_id), _Motion())
            motion.add(now, track.box, track.keypoints, config.keypoint_confidence, config.window_seconds)
            summary = motion.summary(config.window_seconds)
            if summary is not None:
                present[track.track_id] = summary[0]
                if summary[0] >= config.limb_speed and summary[1] <= config.max_body_speed:
                    active[track.track_id] = summary[0]
        found = []
        for a, b in combinations(people, 2):
            if not self._fighting(a, b, active, present):
                continue
            episode = next(
                (e for e in self._episodes if e.camera_id == camera and e.track_ids & {a.track_id, b.track_id}), None
            )
            if episode is not None:
                episode.track_ids |= {a.track_id, b.track_id}
                episode.last = now
                continue
            self._episodes.append(_Episode(camera, {a.track_id, b.track_id}, now))
            found.append(self._observation(frame, a, b, present))
        self._episodes = [e for e in self._episodes if e.camera_id != camera or now - e.last <= config.cooldown_seconds]
        horizon = 2 * config.window_seconds + _STEP
        self._motion = {k: m for k, m in self._motion.items() if k[0] != camera or now - m.seen <= horizon}
        return found

    def _fighting(self, a: Track, b: Track, active: dict[int, float], present: dict[int, float]) -> bool:
        config = self.settings
        size = (pose.body_scale(a.box) + pose.body_scale(b.box)) / 2
        if pose.centre_distance(a.box, b.box) / size > config.max_distance:
            return False
        flailing = (a.track_id in active) + (b.track_id in active)
        if config.both_active:
            return flailing == 2
        return flailing >= 1 and a.track_id in present and b.track_id in present

    def _observation(self, frame: Frame, a: Track, b: Track, speeds: dict[int, float]) -> Observation:
        config = self.settings
        pair = sorted((a, b), key=lambda t: t.track_id)
        fast = [speeds[t.track_id] for t in pair]
        size = (pose.body_scale(a.box) + pose.body_scale(b.box)) / 2
        return Observation(
            kind="fight",
            camera_id=frame.camera_id,
            # 0.65 at the threshold, growing with how far over it the pair is.
            confidence=min(0.95, 0.5 + 0.15 * (sum(fast) / len(fast)) / config.limb_speed),
            track_ids=[t.track_id for t in pair],
            evidence=Evidence(
                frame_id=frame.id,
                camera_id=frame.camera_id,
                boxes=[t.box for t in pair],
                track_ids=[t.track_id for t in pair],
                scores=[t.score for t in pair],
            ),
            captured=frame.captured,
            attributes={
                "limb_speed": {str(t.track_id): round(s, 2) for t, s in zip(pair, fast, strict=True)},
                "distance": round(pose.centre_distance(a.box, b.box) / size, 2),
                "window_seconds": config.window_seconds,
            },
        )
