"""Zones and lines drawn on a camera's view, in normalised coordinates (0..1 of width and height),
so that they stay right whatever resolution a frame is decoded or downscaled to."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

Point = tuple[float, float]


def _check_points(points: list[Point]) -> list[Point]:
    for x, y in points:
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"point ({x}, {y}) is outside the view: use fractions of width and height, 0 to 1")
    return points


class Zone(BaseModel):
    """``[cameras.<camera>.zones.<name>] polygon = [[x, y], ...]`` (at least 3 points)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    polygon: list[Point] = Field(min_length=3)

    _check = field_validator("polygon")(_check_points)

    def contains(self, x: float, y: float) -> bool:
        """Whether the normalised point (x, y) is inside (ray casting; edges count as inside)."""
        inside = False
        points = self.polygon
        for i, (x1, y1) in enumerate(points):
            x2, y2 = points[i - 1]
            if (y1 > y) != (y2 > y):
                crossing = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
                if x <= crossing:
                    inside = not inside
        return inside


class Line(BaseModel):
    """``[cameras.<camera>.lines.<name>] points = [[x1, y1], [x2, y2]]``.

    Crossing from the left of the line (walking from its first point to its second) to its right is
    ``in``; the opposite is ``out``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: tuple[Point, Point]

    @field_validator("points")
    @classmethod
    def _valid(cls, points: tuple[Point, Point]) -> tuple[Point, Point]:
        _check_points(list(points))
        if points[0] == points[1]:
            raise ValueError("a line needs two different points")
        return points

    def side(self, x: float, y: float) -> float:
        """> 0 right of the line, < 0 left, 0 on it (the cross product's sign)."""
        (x1, y1), (x2, y2) = self.points
        return (x2 - x1) * (y - y1) - (y2 - y1) * (x - x1)

    def crossing(self, before: Point, after: Point) -> str | None:
        """``"in"``, ``"out"`` or None for a move from ``before`` to ``after`` (both normalised)."""
        a, b = self.side(*before), self.side(*after)
        if a == b or (a < 0) == (b < 0) or a == 0:
            return None
        if not _segments_intersect(before, after, *self.points):
            return None  # crossed the infinite line beyond the drawn segment
        return "in" if a < 0 < b else "out"


def _segments_intersect(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    def orient(a: Point, b: Point, c: Point) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    d1, d2 = orient(q1, q2, p1), orient(q1, q2, p2)
    d3, d4 = orient(p1, p2, q1), orient(p1, p2, q2)
    return (d1 * d2 <= 0) and (d3 * d4 <= 0)
