"""Zone analyzers (intrusion, loitering, crowd, line crossing) on synthetic tracks with exact outcomes,
then on real footage (the PETS pedestrian clip) through a detector and the tracker, at the end."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from peers.footage import PEDESTRIANS

from campusguard.plugins.analyzers.crowd import CrowdAnalyzer
from campusguard.plugins.analyzers.intrusion import IntrusionAnalyzer
from campusguard.plugins.analyzers.line_crossing import LineCrossingAnalyzer
from campusguard.plugins.analyzers.loitering import LoiteringAnalyzer
from campusguard.plugins.analyzers.zones import foot_point
from campusguard.sdk import (
    Analyzer,
    Box,
    CameraSourceConfig,
    Component,
    ConfigError,
    Frame,
    Line,
    Observation,
    StageStamp,
    Track,
    Zone,
)
from campusguard.sdk.testing import StubCore, make_context, make_frame
from campusguard.sdk.testing.conformance import AnalyzerConformance

MONDAY_EVENING = datetime(2026, 3, 2, 20, 0, tzinfo=UTC)  # a Monday
MONDAY_MORNING = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
SQUARE = Zone(polygon=[(0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75)])
DOWN_THE_MIDDLE = Line(points=((0.5, 0.1), (0.5, 0.9)))


def core_with_camera(tmp_path: Path, camera: str = "cam") -> StubCore:
    return StubCore(
        tmp_path, cameras={camera: CameraSourceConfig(zones={"square": SQUARE}, lines={"mid": DOWN_THE_MIDDLE})}
    )


def build(cls: type[Analyzer], tmp_path: Path, **options: Any) -> Any:
    config = cls.Config.model_validate({"camera": "cam", **options})
    return cls("watch", config, make_context("watch", tmp_path, core_with_camera(tmp_path)))


def frame_at(t: float, wall: datetime = MONDAY_EVENING, camera: str = "cam") -> Frame:
    stamp = StageStamp(monotonic=1000 + t, wall=wall + timedelta(seconds=t))
    return make_frame(camera_id=camera, sequence=round(t * 10), captured=stamp)


def at(
    track_id: int, x: float, y: float, t: float = 0.0, label: str = "person", score: float = 0.4, since: float = 0.0
) -> Track:
    """A track (first seen at ``since``) standing with its feet at the normalised point (x, y) of a 640x480 frame."""
    fx, fy = x * 640, y * 480
    box = Box(x1=fx - 20, y1=max(fy - 100, 0), x2=fx + 20, y2=fy)
    first, last = (StageStamp(monotonic=1000 + s, wall=MONDAY_EVENING) for s in (since, t))
    return Track(
        track_id=track_id, camera_id="cam", label=label, box=box, score=score, first_seen=first, last_seen=last
    )


async def run(
    analyzer: Analyzer, frames: Sequence[tuple[float, list[Track]]], **frame_options: Any
) -> list[Observation]:
    out: list[Observation] = []
    for t, tracks in frames:
        out.extend(await analyzer.analyze(frame_at(t, **frame_options), tracks))
    return out


def steps(start: float, stop: float, step: float = 0.5) -> list[float]:
    return [start + i * step for i in range(round((stop - start) / step))]


# -- shared helpers ----------------------------------------------------------------------------------


def test_the_foot_point_is_the_bottom_centre_normalised() -> None:
    frame = make_frame(width=640, height=480)
    assert foot_point(Box(x1=300, y1=100, x2=340, y2=240), frame) == (0.5, 0.5)
    assert foot_point(Box(x1=620, y1=400, x2=700, y2=500), frame) == (1.0, 1.0)  # clamped to the view


@pytest.mark.parametrize("cls", [IntrusionAnalyzer, LoiteringAnalyzer, CrowdAnalyzer])
async def test_an_unknown_zone_names_camera_and_zone(tmp_path: Path, cls: type[Analyzer]) -> None:
    extra = {"seconds": 5, "count": 3, "schedule": {"weekly": ["mon-sun 00:00-24:00"]}}
    fields = cls.Config.model_fields
    analyzer = build(cls, tmp_path, zone="lobby", **{k: v for k, v in extra.items() if k in fields})
    with pytest.raises(ConfigError, match=r"camera 'cam' has no zone 'lobby'.*zones: square"):
        await analyzer.start()
    with pytest.raises(ConfigError, match="no zone 'lobby'"):
        await analyzer.analyze(frame_at(0), [at(1, 0.5, 0.5)])


async def test_an_unknown_camera_or_line_is_named(tmp_path: Path) -> None:
    analyzer = build(LineCrossingAnalyzer, tmp_path, line="exit")
    with pytest.raises(ConfigError, match=r"camera 'cam' has no line 'exit'.*lines: mid"):
        await analyzer.start()
    elsewhere = build(LoiteringAnalyzer, tmp_path, camera="roof", zone="square", seconds=5)
    with pytest.raises(ConfigError, match=r"camera 'roof' is not configured"):
        await elsewhere.start()


# -- intrusion ---------------------------------------------------------------------------------------

AFTER_HOURS = {"weekly": ["mon-fri 18:00-07:00"], "except": ["2026-03-09"], "timezone": "UTC"}


async def test_intrusion_only_while_the_schedule_forbids(tmp_path: Path) -> None:
    analyzer = build(IntrusionAnalyzer, tmp_path, zone="square", schedule=AFTER_HOURS, min_seconds=1.0)
    await analyzer.start()
    frames = [(t, [at(7, 0.5, 0.5, t)]) for t in steps(0, 5)]
    evening = await run(analyzer, frames)
    assert len(evening) == 1
    (seen,) = evening
    assert seen.kind == "intrusion" and seen.zone == "square" and seen.track_ids == [7]
    assert seen.captured is not None and seen.captured.monotonic == 1001.0  # after min_seconds
    assert seen.evidence.track_ids == [7] and seen.evidence.scores == [0.4] and seen.evidence.camera_id == "cam"
    assert seen.evidence.boxes == [at(7, 0.5, 0.5).box] and seen.evidence.frame_id is not None
    assert seen.attributes == {"seconds": 1.0, "label": "person"}

    assert (
        await run(build(IntrusionAnalyzer, tmp_path, zone="square", schedule=AFTER_HOURS), frames, wall=MONDAY_MORNING)
        == []
    )
    holiday = MONDAY_EVENING + timedelta(days=7)  # 2026-03-09 is in the calendar's exceptions
    assert (
        await run(build(IntrusionAnalyzer, tmp_path, zone="square", schedule=AFTER_HOURS), frames, wall=holiday) == []
    )


async def test_intrusion_needs_the_zone_the_label_and_the_camera(tmp_path: Path) -> None:
    def fresh() -> IntrusionAnalyzer:
        result: IntrusionAnalyzer = build(IntrusionAnalyzer, tmp_path, zone="square", schedule=AFTER_HOURS)
        return result

    assert await run(fresh(), [(t, [at(1, 0.9, 0.5, t)]) for t in steps(0, 5)]) == []  # outside
    assert await run(fresh(), [(t, [at(1, 0.5, 0.5, t, label="car")]) for t in steps(0, 5)]) == []
    assert await run(fresh(), [(t, [at(1, 0.5, 0.5, t)]) for t in steps(0, 5)], camera="other") == []
    assert await run(fresh(), [(t, [at(1, 0.5, 0.5, t)]) for t in steps(0, 0.5)]) == []  # under min_seconds


async def test_intrusion_reports_a_new_stay_after_the_grace(tmp_path: Path) -> None:
    analyzer = build(IntrusionAnalyzer, tmp_path, zone="square", schedule=AFTER_HOURS, grace_seconds=3)
    inside = [(t, [at(1, 0.5, 0.5, t)]) for t in steps(0, 3)]
    short_gap = [(t, [at(1, 0.5, 0.5, t)]) for t in steps(5, 8)]  # 2 s away: the same stay
    long_gap = [(t, [at(1, 0.5, 0.5, t)]) for t in steps(12, 15)]  # 4.5 s away: a new one
    out = await run(analyzer, [*inside, (3.5, []), *short_gap, *long_gap])
    assert [o.captured.monotonic - 1000 for o in out if o.captured] == [1.0, 13.0]


# -- loitering ---------------------------------------------------------------------------------------


def loitering(tmp_path: Path, **options: Any) -> LoiteringAnalyzer:
    options = {"zone": "square", "seconds": 10, "grace_seconds": 3, **options}
    result: LoiteringAnalyzer = build(LoiteringAnalyzer, tmp_path, **options)
    return result


async def test_one_observation_per_dwell(tmp_path: Path) -> None:
    out = await run(loitering(tmp_path), [(t, [at(4, 0.5, 0.5, t)]) for t in steps(0, 30)])
    (seen,) = out
    assert seen.kind == "loitering" and seen.track_ids == [4] and seen.zone == "square"
    assert seen.attributes == {"dwell_seconds": 10.0, "dwell_track_ids": [4]}
    assert seen.captured is not None and seen.captured.monotonic == 1010.0


async def test_walking_through_is_not_loitering(tmp_path: Path) -> None:
    path = [(t, [at(4, 0.2 + 0.05 * t, 0.5, t)]) for t in steps(0, 15)]  # 10 s across the zone, not 10.5
    assert await run(loitering(tmp_path), path) == []


async def test_a_gap_under_the_grace_keeps_the_dwell(tmp_path: Path) -> None:
    frames = [(t, [at(4, 0.5, 0.5, t)] if not 6 <= t < 8.5 else []) for t in steps(0, 12)]
    (seen,) = await run(loitering(tmp_path), frames)
    assert seen.captured is not None and seen.captured.monotonic == 1010.0


async def test_feet_just_outside_for_a_moment_keep_the_dwell_and_walking_off_ends_it(tmp_path: Path) -> None:
    def frames(away: float) -> list[tuple[float, list[Track]]]:
        return [(t, [at(4, 0.5 if not 6 <= t < 6 + away else 0.8, 0.5, t)]) for t in steps(0, 12)]

    assert len(await run(loitering(tmp_path), frames(away=1.0))) == 1  # exit_seconds is 1
    assert await run(loitering(tmp_path), frames(away=2.0)) == []  # seen outside 2 s: left, though under the grace


async def test_a_gap_over_the_grace_restarts_the_dwell(tmp_path: Path) -> None:
    def frames(until: float) -> list[tuple[float, list[Track]]]:
        return [(t, [at(4, 0.5, 0.5, t)] if not 6 <= t < 10 else []) for t in steps(0, until)]

    assert await run(loitering(tmp_path), frames(19.5)) == []  # 9.5 s since the return
    (seen,) = await run(loitering(tmp_path), frames(20.5))
    assert seen.attributes["dwell_seconds"] == 10.0 and seen.captured and seen.captured.monotonic == 1020.0


async def test_a_new_id_where_a_track_vanished_continues_its_dwell(tmp_path: Path) -> None:
    frames = [
        (t, [at(4, 0.5, 0.5, t)] if t < 6 else [] if t < 7 else [at(9, 0.52, 0.5, t, since=7)]) for t in steps(0, 12)
    ]
    (seen,) = await run(loitering(tmp_path), frames)
    assert seen.track_ids == [9] and seen.attributes["dwell_track_ids"] == [4, 9]
    assert seen.captured is not None and seen.captured.monotonic == 1010.0


async def test_a_new_id_far_away_or_while_the_old_is_seen_starts_its_own_dwell(tmp_path: Path) -> None:
    far = [(t, [at(4, 0.3, 0.3, t)] if t < 6 else [] if t < 7 else [at(9, 0.7, 0.7, t)]) for t in steps(0, 12)]
    assert await run(loitering(tmp_path), far) == []
    both = [(t, [at(4, 0.5, 0.5, t)] + ([at(9, 0.52, 0.5, t)] if t >= 7 else [])) for t in steps(0, 12)]
    out = await run(loitering(tmp_path), both)
    assert [o.track_ids for o in out] == [[4]]
    # someone already tracked walks in where the first one vanished: not the same person
    walk_in = [
        (t, [at(4, 0.5, 0.5, t)] if t < 6 else [] if t < 7 else [at(9, 0.52, 0.5, t, since=1)]) for t in steps(0, 12)
    ]
    assert await run(loitering(tmp_path), walk_in) == []
    from_outside = [
        (t, [at(4, 0.5, 0.5, t)] if t < 6 else [at(9, 0.8 if t < 7 else 0.52, 0.5, t, since=6)]) for t in steps(0, 12)
    ]
    assert await run(loitering(tmp_path), from_outside) == []


async def test_whoever_comes_in_where_a_track_walked_out_of_view_is_someone_else(tmp_path: Path) -> None:
    corner = Zone(polygon=[(0.5, 0.5), (1, 0.5), (1, 1), (0.5, 1)])
    core = StubCore(tmp_path, cameras={"cam": CameraSourceConfig(zones={"corner": corner})})
    config = LoiteringAnalyzer.Config.model_validate({"camera": "cam", "zone": "corner", "seconds": 10})
    analyzer = LoiteringAnalyzer("watch", config, make_context("watch", tmp_path, core))
    frames = [
        (t, [at(4, 0.98, 0.8, t)] if t < 6 else [] if t < 7 else [at(9, 0.97, 0.8, t, since=7)]) for t in steps(0, 12)
    ]
    assert await run(analyzer, frames) == []  # the box touched the right border when it vanished


async def test_each_person_gets_their_own_dwell(tmp_path: Path) -> None:
    frames = [(t, [at(1, 0.3, 0.5, t), *([at(2, 0.7, 0.5, t)] if t >= 4 else [])]) for t in steps(0, 20)]
    out = await run(loitering(tmp_path), frames)
    assert [(o.track_ids, o.captured.monotonic - 1000 if o.captured else None) for o in out] == [
        ([1], 10.0),
        ([2], 14.0),
    ]


# -- crowd -------------------------------------------------------------------------------------------


def crowd(tmp_path: Path, **options: Any) -> CrowdAnalyzer:
    result: CrowdAnalyzer = build(CrowdAnalyzer, tmp_path, **{"count": 3, "seconds": 2, "grace_seconds": 1, **options})
    return result


def people(n: int, t: float, x: float = 0.5) -> list[Track]:
    return [at(i + 1, x, 0.3 + 0.4 * i / max(n, 1), t) for i in range(n)]


async def test_a_crowd_is_count_people_for_seconds(tmp_path: Path) -> None:
    out = await run(crowd(tmp_path, zone="square"), [(t, people(3, t)) for t in steps(0, 10)])
    (seen,) = out
    assert seen.kind == "crowd" and seen.zone == "square" and sorted(seen.track_ids) == [1, 2, 3]
    assert seen.attributes == {"trigger": "count", "count": 3, "peak": 3, "seconds": 2.0}
    assert seen.captured is not None and seen.captured.monotonic == 1002.0
    assert len(seen.evidence.boxes) == 3 and seen.evidence.scores == [0.4] * 3

    assert await run(crowd(tmp_path, zone="square"), [(t, people(2, t)) for t in steps(0, 10)]) == []
    assert await run(crowd(tmp_path, zone="square"), [(t, people(3, t)) for t in steps(0, 1.5)]) == []


async def test_people_outside_the_zone_count_only_for_the_whole_view(tmp_path: Path) -> None:
    outside = [(t, people(3, t, x=0.9)) for t in steps(0, 5)]
    assert await run(crowd(tmp_path, zone="square"), outside) == []
    (seen,) = await run(crowd(tmp_path), outside)
    assert seen.zone is None and seen.attributes["count"] == 3


async def test_a_person_missed_for_a_frame_still_counts(tmp_path: Path) -> None:
    flicker = [(t, people(3, t)[: 2 + (i % 2)]) for i, t in enumerate(steps(0, 10))]
    assert len(await run(crowd(tmp_path, zone="square"), flicker)) == 1
    assert await run(crowd(tmp_path, zone="square", grace_seconds=0), flicker) == []


async def test_a_crowd_that_disperses_and_gathers_again_is_reported_again(tmp_path: Path) -> None:
    frames = [(t, people(3 if t < 4 or t >= 8 else 1, t)) for t in steps(0, 12)]
    out = await run(crowd(tmp_path, zone="square"), frames)
    assert [o.captured.monotonic - 1000 for o in out if o.captured] == [2.0, 10.0]


async def test_rapid_growth_is_reported_once_per_surge(tmp_path: Path) -> None:
    analyzer = crowd(tmp_path, count=50, growth=4, growth_seconds=5)
    calm = [(t, people(1, t)) for t in steps(0, 10)]
    surge = [(t, people(1 + int(t - 10) * 2, t)) for t in steps(10, 13)]  # +2 a second
    stay = [(t, people(7, t)) for t in steps(13, 30)]
    out = await run(analyzer, [*calm, *surge, *stay])
    (seen,) = out
    assert seen.attributes["trigger"] == "growth" and seen.attributes["growth"] == 4
    assert seen.captured is not None and seen.captured.monotonic == 1012.0

    slow = [(t, people(1 + round(t) // 4, t)) for t in steps(0, 30)]  # +1 every 4 s
    assert await run(crowd(tmp_path, count=50, growth=4, growth_seconds=5), slow) == []


async def test_there_is_no_cap_on_the_count(tmp_path: Path) -> None:
    (seen,) = await run(crowd(tmp_path, count=150), [(t, people(200, t)) for t in steps(0, 3)])
    assert seen.attributes["count"] == 200 and len(seen.track_ids) == 200


# -- line crossing -----------------------------------------------------------------------------------


def crossing(tmp_path: Path, **options: Any) -> LineCrossingAnalyzer:
    result: LineCrossingAnalyzer = build(LineCrossingAnalyzer, tmp_path, line="mid", **options)
    return result


async def test_crossings_have_a_direction_and_are_counted(tmp_path: Path) -> None:
    analyzer = crossing(tmp_path)
    await analyzer.start()
    # The line runs down the middle: its right (walking from its first point to its second) is x < 0.5.
    xs = [0.7, 0.6, 0.4, 0.3, 0.45, 0.55, 0.6, 0.3]
    out = await run(analyzer, [(i, [at(3, x, 0.5, i)]) for i, x in enumerate(xs)])
    assert [o.attributes["direction"] for o in out] == ["in", "out", "in"]
    assert out[0].attributes == {"direction": "in", "line": "mid", "in": 1, "out": 0}
    assert out[-1].attributes == {"direction": "in", "line": "mid", "in": 2, "out": 1}
    assert analyzer.counts == {"in": 2, "out": 1}
    assert out[0].kind == "line_crossing" and out[0].track_ids == [3] and out[0].evidence.track_ids == [3]


async def test_feet_on_the_line_and_passing_beside_it_do_not_count(tmp_path: Path) -> None:
    jitter = [0.3, 0.497, 0.503, 0.498, 0.502, 0.3]  # within the margin, then back where it was
    assert await run(crossing(tmp_path), [(i, [at(3, x, 0.5, i)]) for i, x in enumerate(jitter)]) == []
    beside = [(i, [at(3, x, 0.95, i)]) for i, x in enumerate([0.3, 0.7])]  # below the drawn segment's end
    assert await run(crossing(tmp_path), beside) == []
    cars = [(i, [at(3, x, 0.5, i, label="car")]) for i, x in enumerate([0.3, 0.7])]
    assert await run(crossing(tmp_path), cars) == []


async def test_each_track_crosses_on_its_own(tmp_path: Path) -> None:
    frames = [(0, [at(1, 0.3, 0.4), at(2, 0.7, 0.6)]), (1, [at(1, 0.7, 0.4, 1), at(2, 0.3, 0.6, 1)])]
    out = await run(crossing(tmp_path), frames)
    assert sorted((o.track_ids[0], o.attributes["direction"]) for o in out) == [(1, "out"), (2, "in")]


# -- conformance -------------------------------------------------------------------------------------


class _WithCamera:
    """The suites' stub core knows no camera: give it the one these analyzers watch."""

    component_class: ClassVar[type[Component]]

    def valid_config(self) -> dict[str, Any]:
        raise NotImplementedError

    def build(self, tmp_path: Path, options: dict[str, Any] | None = None) -> Component:
        config = self.component_class.Config.model_validate(self.valid_config() if options is None else options)
        core = core_with_camera(tmp_path, "test-camera")
        return self.component_class("conformance", config, make_context("conformance", tmp_path, core))


class TestIntrusionConformance(_WithCamera, AnalyzerConformance):
    component_class = IntrusionAnalyzer

    def valid_config(self) -> dict[str, Any]:
        return {"camera": "test-camera", "zone": "square", "schedule": {"weekly": ["mon-sun 00:00-24:00"]}}


class TestLoiteringConformance(_WithCamera, AnalyzerConformance):
    component_class = LoiteringAnalyzer

    def valid_config(self) -> dict[str, Any]:
        return {"camera": "test-camera", "zone": "square", "seconds": 30}


class TestCrowdConformance(_WithCamera, AnalyzerConformance):
    component_class = CrowdAnalyzer

    def valid_config(self) -> dict[str, Any]:
        return {"camera": "test-camera", "zone": "square", "count": 5, "growth": 3}


class TestLineCrossingConformance(_WithCamera, AnalyzerConformance):
    component_class = LineCrossingAnalyzer

    def valid_config(self) -> dict[str, Any]:
        return {"camera": "test-camera", "line": "mid"}


# -- real footage ------------------------------------------------------------------------------------
#
# The PETS pedestrian clip (640x480, 10 fps, 30 s): people cross a paved campus; from about 3 s to
# 15 s a few of them stand talking by the lamp post and its blue sign, while others walk past. People
# are found by the HOG detector plugin, run on the regions where a background model sees motion (as
# the pipeline's motion gate hands it regions): on whole frames it would take ~0.1 s a frame here.
# Frames go through the tracker and the analyzers at 5 fps, the default detection rate.

FOOTAGE = PEDESTRIANS
PETS_ZONES = {
    # where the group stands: the foot of the lamp post and the sign
    "lamp": Zone(polygon=[(0.42, 0.40), (0.62, 0.40), (0.62, 0.52), (0.42, 0.52)]),
    # the paved square around it, which the group and the people walking past share
    "plaza": Zone(polygon=[(0.30, 0.33), (0.75, 0.33), (0.75, 0.55), (0.30, 0.55)]),
    # controls: the path on the right that people only walk along, and the empty lawn
    "path": Zone(polygon=[(0.72, 0.50), (0.98, 0.50), (0.98, 0.75), (0.72, 0.75)]),
    "lawn": Zone(polygon=[(0.02, 0.60), (0.30, 0.60), (0.30, 0.95), (0.02, 0.95)]),
}
PETS_ANALYZERS: dict[str, tuple[type[Analyzer], dict[str, Any]]] = {
    "loiter_lamp": (LoiteringAnalyzer, {"zone": "lamp", "seconds": 8}),
    "loiter_path": (LoiteringAnalyzer, {"zone": "path", "seconds": 8}),
    "crowd_plaza": (CrowdAnalyzer, {"zone": "plaza", "count": 3, "seconds": 2}),
    "crowd_lawn": (CrowdAnalyzer, {"zone": "lawn", "count": 3, "seconds": 2}),
}
# people here are 60-90 px tall; confidence 0.2 is an SVM margin of 0.25
HOG_OPTIONS = {"min_height": 64, "scale": 1.2, "confidence": 0.2}


def _moving_regions(mask: Any, width: int, height: int) -> list[tuple[int, int, int, int]]:
    """Boxes (x1, y1, x2, y2) around the blobs of a half-size motion mask, padded to fit a person."""
    import cv2

    _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    regions = []
    for x, y, w, h, area in stats[1:] * 2:
        if area >= 1600 and h >= 30:
            regions.append((max(0, x - 16), max(0, y - 24), min(width, x + w + 16), min(height, y + h + 24)))
    return regions


async def _people(detector: Any, frame: Frame, mask: Any) -> list[Any]:
    """The detector's people in the moving regions of ``frame``, in frame pixels, duplicates merged."""
    import cv2

    from campusguard.sdk import Detection

    regions = _moving_regions(mask, frame.width, frame.height)
    crops = [frame.image[y1:y2, x1:x2] for x1, y1, x2, y2 in regions]
    found: list[Detection] = []
    for (x1, y1, _, _), detections in zip(
        regions, await detector.detect([make_frame(image=c) for c in crops]), strict=True
    ):
        for d in detections:
            box = Box(x1=d.box.x1 + x1, y1=d.box.y1 + y1, x2=d.box.x2 + x1, y2=d.box.y2 + y1)
            found.append(d.model_copy(update={"box": box}))
    boxes = [[d.box.x1, d.box.y1, d.box.width, d.box.height] for d in found]
    keep = cv2.dnn.NMSBoxes(boxes, [d.score for d in found], 0.0, 0.4) if found else []
    return [found[int(i)] for i in keep]


@pytest.fixture(scope="module")
def pets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run the clip once through motion gate, HOG, tracker and the analyzers; keep what came out."""
    import asyncio

    import cv2
    import numpy as np

    from campusguard.detectors.hog import HogPeopleDetector
    from campusguard.plugins.trackers.bytetrack import ByteTrack

    if not FOOTAGE.exists():
        pytest.fail(f"{FOOTAGE} is missing (the footage lives in ../shared/data)")
    tmp = tmp_path_factory.mktemp("pets")
    core = StubCore(tmp, cameras={"pets": CameraSourceConfig(zones=PETS_ZONES)})
    hog = HogPeopleDetector("hog", HogPeopleDetector.Config(**HOG_OPTIONS), make_context("hog", tmp, core))
    tracker = ByteTrack("people", ByteTrack.Config(), make_context("people", tmp, core))
    analyzers = {
        name: cls(name, cls.Config.model_validate({"camera": "pets", **options}), make_context(name, tmp, core))
        for name, (cls, options) in PETS_ANALYZERS.items()
    }
    capture = cv2.VideoCapture(str(FOOTAGE))
    images = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        images.append(image)
    capture.release()
    # The background model starts from the clip's median, as a gate that has watched the scene would.
    small = [cv2.resize(image, (320, 240), interpolation=cv2.INTER_AREA) for image in images]
    background = cv2.createBackgroundSubtractorMOG2(history=200, varThreshold=25, detectShadows=True)
    median = np.median(np.stack(small[::20]), axis=0).astype(np.uint8)
    for _ in range(30):
        background.apply(median, learningRate=0.1)
    opening = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
    grow = cv2.getStructuringElement(cv2.MORPH_RECT, (7, 13))
    observations: dict[str, list[Observation]] = {name: [] for name in analyzers}
    ids: set[int] = set()

    async def play() -> None:
        await hog.start()
        for analyzer in analyzers.values():
            await analyzer.start()
        try:
            for n in range(0, len(images), 2):  # 10 fps -> 5 fps
                mask = background.apply(small[n], learningRate=0.002)
                mask = cv2.dilate(cv2.morphologyEx((mask == 255).astype(np.uint8) * 255, cv2.MORPH_OPEN, opening), grow)
                stamp = StageStamp(monotonic=n / 10, wall=MONDAY_EVENING + timedelta(seconds=n / 10))
                frame = make_frame(camera_id="pets", sequence=n, captured=stamp, image=images[n])
                tracks = await tracker.update(frame, await _people(hog, frame, mask))
                ids.update(t.track_id for t in tracks)
                for name, analyzer in analyzers.items():
                    observations[name] += await analyzer.analyze(frame, tracks)
        finally:
            await hog.stop()

    asyncio.run(play())
    return {"observations": observations, "track_ids": ids, "frames": len(images)}


def inside(zone: str, observation: Observation) -> bool:
    frame = make_frame(width=640, height=480)
    return all(PETS_ZONES[zone].contains(*foot_point(box, frame)) for box in observation.evidence.boxes)


def test_pets_someone_loiters_by_the_lamp_and_nobody_on_the_path(pets: dict[str, Any]) -> None:
    lamp = pets["observations"]["loiter_lamp"]
    assert 1 <= len(lamp) <= 2, lamp  # one person stands there throughout; a second may join them
    for seen in lamp:
        assert seen.kind == "loitering" and seen.zone == "lamp" and inside("lamp", seen)
        assert seen.captured is not None and 8 <= seen.captured.monotonic <= 16
        assert seen.attributes["dwell_seconds"] >= 8
        # one id all along for the person in the open; one half hidden by the sign may be re-found
        assert len(seen.attributes["dwell_track_ids"]) <= 3
        assert seen.evidence.frame_id and seen.evidence.scores and seen.evidence.track_ids == seen.track_ids
    # people walk along the path in a stream, each for 2-3 s: no dwell is handed from one to the next,
    # and a track that walks off and comes back (two walkers swapping ids) has left in between
    assert pets["observations"]["loiter_path"] == []


def test_pets_the_group_by_the_lamp_is_a_crowd_and_the_lawn_is_empty(pets: dict[str, Any]) -> None:
    plaza = pets["observations"]["crowd_plaza"]
    first = plaza[0]
    assert first.kind == "crowd" and first.zone == "plaza" and first.attributes["trigger"] == "count"
    assert first.captured is not None and 5 <= first.captured.monotonic <= 10  # the group gathers from ~5 s
    assert first.attributes["count"] >= 3 and len(first.evidence.boxes) >= 3 and inside("plaza", first)
    assert len(plaza) <= 3
    assert pets["observations"]["crowd_lawn"] == []


def test_pets_tracks_are_not_fragmented(pets: dict[str, Any]) -> None:
    # Every person the tracker loses and finds again under a new id adds one. 20 ids with these
    # settings (18-27 with HOG's varied); about 20-25 people cross the clip (counted by eye, far ones
    # included, which HOG misses), so a tracker that fragments would show here.
    assert len(pets["track_ids"]) <= 30
