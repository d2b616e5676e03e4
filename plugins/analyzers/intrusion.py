"""Intrusion: a person in a zone while its schedule forbids it.

    [analyzers.courtyard_after_hours]
    type = "intrusion"
    camera = "courtyard"
    zone = "courtyard"
    schedule.weekly = ["mon-fri 18:00-07:00", "sat-sun 00:00-24:00"]
    schedule.except = ["2026-12-21..2027-01-03"]
    min_seconds = 1.0

The schedule is checked against the frame's wall clock (``captured.wall``), so a replayed file gives
the same answer as the camera did. One observation per track per stay: a track reported once is not
reported again until it has been out of the zone (or unseen) longer than ``grace_seconds``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from campusguard.sdk import ComponentContext, Frame, Observation, Schedule, Track

from .zones import ZoneAnalyzer, ZoneAnalyzerConfig, observe


class IntrusionConfig(ZoneAnalyzerConfig):
    schedule: Schedule = Field(description="when the zone is forbidden")
    min_seconds: float = Field(default=1.0, ge=0, description="how long someone must be inside before it counts")
    grace_seconds: float = Field(default=3.0, ge=0, description="a gap shorter than this continues the same stay")


@dataclass
class _Stay:
    entered: float
    last_inside: float
    reported: bool = False


class IntrusionAnalyzer(ZoneAnalyzer):
    kind = "intrusion"
    Config = IntrusionConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, IntrusionConfig)
        self.cfg = config
        self._stays: dict[int, _Stay] = {}

    async def stop(self) -> None:
        self._stays.clear()

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        if not self.watches(frame):
            return []
        if not self.cfg.schedule.active(frame.captured.wall):
            self._stays.clear()  # allowed now: a stay starts over when the zone is forbidden again
            return []
        now = frame.captured.monotonic
        out: list[Observation] = []
        for track in self.inside(frame, tracks):
            stay = self._stays.get(track.track_id)
            if stay is None or now - stay.last_inside > self.cfg.grace_seconds:
                stay = self._stays[track.track_id] = _Stay(entered=now, last_inside=now)
            stay.last_inside = now
            if not stay.reported and now - stay.entered >= self.cfg.min_seconds:
                stay.reported = True
                out.append(
                    observe(
                        "intrusion",
                        frame,
                        [track],
                        zone=self.zone_name,
                        attributes={"seconds": round(now - stay.entered, 3), "label": track.label},
                    )
                )
        for track_id in [i for i, s in self._stays.items() if now - s.last_inside > self.cfg.grace_seconds]:
            del self._stays[track_id]
        return out
