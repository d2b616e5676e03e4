"""Zones, lines and schedules: the shapes and calendars analyzers and rules are configured with."""

from __future__ import annotations

from datetime import datetime

import pytest
from pydantic import ValidationError

from campusguard.sdk import Line, Schedule, Zone

SQUARE = Zone(polygon=[(0.2, 0.2), (0.6, 0.2), (0.6, 0.6), (0.2, 0.6)])


@pytest.mark.parametrize(("x", "y", "inside"), [(0.4, 0.4, True), (0.1, 0.4, False), (0.7, 0.7, False)])
def test_zone_contains(x: float, y: float, inside: bool) -> None:
    assert SQUARE.contains(x, y) is inside


def test_concave_zone() -> None:
    ell = Zone(polygon=[(0, 0), (1, 0), (1, 0.2), (0.2, 0.2), (0.2, 1), (0, 1)])
    assert ell.contains(0.1, 0.9) and ell.contains(0.9, 0.1) and not ell.contains(0.6, 0.6)


def test_line_crossing_has_a_direction_and_a_length() -> None:
    door = Line(points=((0.5, 0.2), (0.5, 0.8)))  # drawn downwards: walking right-to-left is "in"
    assert door.crossing((0.6, 0.5), (0.4, 0.5)) == "in"
    assert door.crossing((0.4, 0.5), (0.6, 0.5)) == "out"
    assert door.crossing((0.6, 0.95), (0.4, 0.95)) is None  # passed below the drawn segment
    assert door.crossing((0.6, 0.5), (0.7, 0.5)) is None


def test_bad_shapes_are_rejected_with_reasons() -> None:
    with pytest.raises(ValidationError, match="outside the view"):
        Zone(polygon=[(0, 0), (640, 0), (640, 480)])
    with pytest.raises(ValidationError, match="at least 3"):
        Zone(polygon=[(0, 0), (1, 1)])
    with pytest.raises(ValidationError, match="two different points"):
        Line(points=((0.5, 0.5), (0.5, 0.5)))


AFTER_HOURS = Schedule.model_validate(
    {
        "weekly": ["mon-fri 18:00-07:00", "sat-sun 00:00-24:00"],
        "except": ["2026-12-24"],
        "also": ["2026-12-31"],
        "timezone": "America/Chicago",
    }
)


@pytest.mark.parametrize(
    ("when", "active"),
    [
        ("2026-11-30T17:30:00-06:00", False),  # Monday, before the evening window
        ("2026-11-30T18:00:00-06:00", True),  # Monday evening
        ("2026-12-01T06:59:00-06:00", True),  # Tuesday morning: Monday's window runs past midnight
        ("2026-12-01T07:00:00-06:00", False),
        ("2026-11-28T12:00:00-06:00", True),  # Saturday all day
        ("2026-12-24T21:00:00-06:00", False),  # an exception day (Thursday)
        ("2026-12-31T10:00:00-06:00", True),  # an 'also' day in school hours
        ("2026-12-01T00:30:00Z", True),  # UTC in, local time used: Monday 18:30 in Chicago
    ],
)
def test_schedule(when: str, active: bool) -> None:
    assert AFTER_HOURS.active(datetime.fromisoformat(when)) is active


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"weekly": ["weekdays 9-5"]}, "expected like 'mon-fri 18:00-07:00'"),
        ({"weekly": ["mon-fry 09:00-17:00"]}, "days are mon"),
        ({"except": ["2026-13-01"]}, "expected YYYY-MM-DD"),
        ({"except": ["2026-12-05..2026-12-01"]}, "ends before it starts"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_bad_schedules_name_the_problem(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Schedule.model_validate(data)
