"""Crowd: ``count`` or more people in a zone (or the whole view) for ``seconds``, and rapid growth.

    [analyzers.front_steps_crowd]
    type = "crowd"
    camera = "front"
    zone = "steps"         # leave out for the whole view
    count = 10
    seconds = 5
    growth = 6             # optional: 6 more people ...
    growth_seconds = 10    # ... within 10 seconds

Two kinds of ``crowd`` observation, told apart by ``attributes["trigger"]``: ``"count"`` once per
gathering (the count stayed at ``count`` or more for ``seconds``) and ``"growth"`` once per surge
(the count rose by ``growth`` within ``growth_seconds``). A person counts while seen inside within
the last ``grace_seconds``, so a detector missing someone for a frame neither ends a gathering nor
fakes a surge. There is no cap on how many people are counted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from pydantic import BaseModel, Field

from campusguard.sdk import ComponentContext, Frame, Observation, Track

from .zones import CameraAnalyzerConfig, ZoneAnalyzer, observe


class CrowdConfig(CameraAnalyzerConfig):
    zone: str | None = Field(default=None, description="a zone of the camera; none: the whole view")
    count: int = Field(ge=1, description="people that make a crowd")
    seconds: float = Field(default=5.0, ge=0, description="how long the count must hold")
    grace_seconds: float = Field(default=1.0, ge=0, description="someone unseen for less than this still counts")
    growth: int | None = Field(default=None, ge=1, description="a rise of this many people is rapid growth")
    growth_seconds: float = Field(default=10.0, gt=0, description="the window the rise must happen in")


class CrowdAnalyzer(ZoneAnalyzer):
    kind = "crowd"
    Config = CrowdConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, CrowdConfig)
        self.cfg = config
        self._reset()

    def _reset(self) -> None:
        self._last_inside: dict[int, float] = {}  # track id -> when it was last seen inside
        self._since: float | None = None  # when this gathering reached `count`
        self._peak = 0
        self._reported = False
        self._counts: deque[tuple[float, int]] = deque()  # (time, count) over the growth window
        self._surging = False

    async def stop(self) -> None:
        self._reset()

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        if not self.watches(frame):
            return []
        now = frame.captured.monotonic
        people = self.inside(frame, tracks)
        count = self._count(now, people)
        out: list[Observation] = []
        lasted = self._gathering(now, count)
        if lasted is not None:
            out.append(self._observe(frame, people, count, "count", {"seconds": round(lasted, 3)}))
        rise = self._rise(now, count)
        if rise is not None:
            attributes = {"growth": rise, "growth_seconds": self.cfg.growth_seconds}
            out.append(self._observe(frame, people, count, "growth", attributes))
        return out

    def _count(self, now: float, people: list[Track]) -> int:
        """People seen inside now or within the last ``grace_seconds``."""
        for track in people:
            self._last_inside[track.track_id] = now
        grace = self.cfg.grace_seconds
        self._last_inside = {i: t for i, t in self._last_inside.items() if now - t <= grace}
        return len(self._last_inside)

    def _gathering(self, now: float, count: int) -> float | None:
        """How long the crowd has lasted, on the one frame it first lasted ``seconds``."""
        if count < self.cfg.count:
            self._since = None  # dispersed
            return None
        if self._since is None:
            self._since, self._peak, self._reported = now, 0, False
        self._peak = max(self._peak, count)
        if not self._reported and now - self._since >= self.cfg.seconds:
            self._reported = True
            return now - self._since
        return None

    def _rise(self, now: float, count: int) -> int | None:
        """The rise over the window, on the frame a surge first reaches ``growth``."""
        if self.cfg.growth is None:
            return None
        self._counts.append((now, count))
        while self._counts and now - self._counts[0][0] > self.cfg.growth_seconds:
            self._counts.popleft()
        rise = count - min(c for _, c in self._counts)
        if rise < self.cfg.growth:
            self._surging = False  # the surge is over (or has become the new normal)
            return None
        if self._surging:
            return None
        self._surging = True
        return rise

    def _observe(
        self, frame: Frame, people: list[Track], count: int, trigger: str, extra: dict[str, float | int]
    ) -> Observation:
        attributes: dict[str, object] = {
            "trigger": trigger,
            "count": count,  # held over grace_seconds; the evidence holds the people seen in this frame
            "peak": max(self._peak, count),
            **extra,
        }
        return observe("crowd", frame, people, zone=self.zone_name, attributes=attributes)
