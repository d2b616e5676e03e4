"""Line crossing with direction, and counts per direction (the tailgating check counts with it).

    [cameras.lobby.lines.front_door]
    points = [[0.30, 0.80], [0.70, 0.80]]   # walking from the first point to the second: "in" is on the right

    [analyzers.front_door_count]
    type = "line_crossing"
    camera = "lobby"
    line = "front_door"

One observation per crossing, ``attributes = {"direction": "in" | "out", "line": name, "in": n,
"out": m}`` with the running counts. A track's foot point must be ``margin`` (fraction of the view)
clear of the line on the far side before a crossing counts, so feet jittering on the line are not
counted back and forth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from campusguard.sdk import Analyzer, ComponentContext, Frame, Line, Observation, Track

from .zones import CameraAnalyzerConfig, Point, find_line, foot_point, observe


class LineCrossingConfig(CameraAnalyzerConfig):
    line: str = Field(description="a line of the camera ([cameras.<camera>.lines.<line>])")
    margin: float = Field(default=0.01, ge=0, le=0.5, description="distance past the line before a crossing counts")
    forget_seconds: float = Field(default=10.0, gt=0, description="a track unseen this long is forgotten")


@dataclass
class _Side:
    point: Point  # the last foot point that was clear of the line
    positive: bool  # on the right of the line ("in" side)
    seen: float


class LineCrossingAnalyzer(Analyzer):
    kind = "line_crossing"
    Config = LineCrossingConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, LineCrossingConfig)
        self.cfg = config
        self.labels = tuple(config.labels)
        self._line: Line | None = None
        self._sides: dict[int, _Side] = {}
        self.counts: dict[str, int] = {"in": 0, "out": 0}

    async def start(self) -> None:
        self._line = None
        self.line()  # a wrong line name fails at start, naming camera and line

    async def stop(self) -> None:
        self._sides.clear()

    def line(self) -> Line:
        if self._line is None:
            self._line = find_line(self.context, self.cfg.camera, self.cfg.line)
        return self._line

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        if frame.camera_id != self.cfg.camera:
            return []
        line, now = self.line(), frame.captured.monotonic
        (x1, y1), (x2, y2) = line.points
        length = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        out: list[Observation] = []
        for track in tracks:
            if track.label not in self.cfg.labels:
                continue
            point = foot_point(track.box, frame)
            distance = line.side(*point) / length
            if abs(distance) < self.cfg.margin:
                continue  # on the line: wait until it is clearly on one side
            before = self._sides.get(track.track_id)
            self._sides[track.track_id] = _Side(point, distance > 0, now)
            if before is None or before.positive == (distance > 0):
                continue
            direction = line.crossing(before.point, point)
            if direction is None:
                continue  # passed beside the drawn segment, not through it
            self.counts[direction] += 1
            attributes = {"direction": direction, "line": self.cfg.line, **self.counts}
            out.append(observe("line_crossing", frame, [track], zone=None, attributes=attributes))
        self._sides = {i: s for i, s in self._sides.items() if now - s.seen <= self.cfg.forget_seconds}
        return out
