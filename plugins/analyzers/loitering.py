"""Loitering: someone stays in a zone for ``seconds`` or more.

    [analyzers.side_door_loitering]
    type = "loitering"
    camera = "side_door"
    zone = "doorway"
    seconds = 60
    grace_seconds = 5

A dwell survives short gaps: a track unseen (hidden behind someone) for less than ``grace_seconds``,
or seen with its feet just outside the zone for less than ``exit_seconds``, keeps its dwell; seen
outside for longer, it has left. When the tracker loses someone behind a pillar and gives
them a new id, the new id takes over the dwell of a track that vanished within ``grace_seconds`` and
``rejoin_distance`` (fractions of the view) of where it first appears, inside the zone, after the
old one vanished; someone already tracked who walks in is someone else, and so is whoever comes in
where a track walked out of the view. A longer gap starts a new dwell.

One observation per dwell: on the frame the dwell reaches ``seconds``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from campusguard.sdk import ComponentContext, Frame, Observation, Track

from .zones import Point, ZoneAnalyzer, ZoneAnalyzerConfig, foot_point, observe


class LoiteringConfig(ZoneAnalyzerConfig):
    seconds: float = Field(gt=0, description="dwell that counts as loitering")
    grace_seconds: float = Field(default=5.0, ge=0, description="unseen for less than this keeps the dwell")
    exit_seconds: float = Field(default=1.0, ge=0, description="seen outside for less than this keeps the dwell")
    rejoin_distance: float = Field(
        default=0.05, ge=0, le=1, description="how near a new id must appear to take over a vanished dwell"
    )


@dataclass
class _Dwell:
    entered: float
    last_inside: float
    where: Point
    at_edge: bool = False  # last seen touching the border of the view: it left, it was not hidden
    outside_since: float | None = None  # seen outside the zone since then
    track_ids: list[int] = field(default_factory=list)  # every id this dwell has had, first to last
    reported: bool = False


class LoiteringAnalyzer(ZoneAnalyzer):
    kind = "loitering"
    Config = LoiteringConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, LoiteringConfig)
        self.cfg = config
        self._dwells: dict[int, _Dwell] = {}
        self._known: dict[int, float] = {}  # track id -> last seen anywhere in the view

    async def stop(self) -> None:
        self._dwells.clear()
        self._known.clear()

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        if not self.watches(frame):
            return []
        now = frame.captured.monotonic
        grace = self.cfg.grace_seconds
        self._dwells = {i: d for i, d in self._dwells.items() if now - d.last_inside <= grace}
        new = {t.track_id for t in tracks} - self._known.keys()
        visible = {t.track_id for t in tracks}
        out: list[Observation] = []
        inside = self.inside(frame, tracks)
        self._left(now, visible - {t.track_id for t in inside})
        for track in inside:
            where = foot_point(track.box, frame)
            dwell = self._dwells.get(track.track_id)
            if dwell is None and track.track_id in new:
                dwell = self._rejoin(track, where, visible)
            if dwell is None:
                dwell = self._dwells[track.track_id] = _Dwell(entered=now, last_inside=now, where=where)
            if not dwell.track_ids or dwell.track_ids[-1] != track.track_id:
                dwell.track_ids.append(track.track_id)
            dwell.last_inside, dwell.where, dwell.at_edge = now, where, _at_edge(track, frame)
            dwell.outside_since = None
            if not dwell.reported and now - dwell.entered >= self.cfg.seconds:
                dwell.reported = True
                attributes = {"dwell_seconds": round(now - dwell.entered, 3), "dwell_track_ids": list(dwell.track_ids)}
                out.append(observe("loitering", frame, [track], zone=self.zone_name, attributes=attributes))
        self._known.update((t.track_id, now) for t in tracks)
        self._known = {i: seen for i, seen in self._known.items() if now - seen <= grace}
        return out

    def _left(self, now: float, outside: set[int]) -> None:
        """End the dwells of tracks seen outside the zone for longer than ``exit_seconds``."""
        for track_id in outside & self._dwells.keys():
            dwell = self._dwells[track_id]
            if dwell.outside_since is None:
                dwell.outside_since = now
            elif now - dwell.outside_since > self.cfg.exit_seconds:
                del self._dwells[track_id]

    def _rejoin(self, track: Track, where: Point, visible: set[int]) -> _Dwell | None:
        """The dwell of the nearest vanished track, moved to ``track``; None when there is none."""
        best: tuple[float, int] | None = None
        for old_id, dwell in self._dwells.items():
            if old_id in visible or dwell.at_edge:
                continue  # still seen, or walked out of the view: not the same person
            if track.first_seen.monotonic < dwell.last_inside:
                continue  # tracked since before the other vanished: someone else walking in
            distance = math.dist(where, dwell.where)
            if distance <= self.cfg.rejoin_distance and (best is None or distance < best[0]):
                best = (distance, old_id)
        if best is None:
            return None
        dwell = self._dwells.pop(best[1])
        self._dwells[track.track_id] = dwell
        return dwell


def _at_edge(track: Track, frame: Frame, margin: float = 0.02) -> bool:
    box, width, height = track.box, max(frame.width, 1), max(frame.height, 1)
    return min(box.x1 / width, box.y1 / height, 1 - box.x2 / width, 1 - box.y2 / height) < margin
