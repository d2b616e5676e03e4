"""Second looks: where a person vanished mid-view, the detectors look again, closer (a fall in a busy scene)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np

from campusguard.core.pipeline.processor import FrameProcessor
from campusguard.core.pipeline.second_look import CONFIRM, SecondLook, merge
from campusguard.sdk import Box, CameraSourceConfig, Detection, Detector, Frame, MotionSettings, StageStamp, Track
from campusguard.sdk.testing import StubCore, make_context, make_frame

T0 = 1000.0


def frame_at(t: float, sequence: int = 0) -> Frame:
    stamp = StageStamp.now().model_copy(update={"monotonic": T0 + t})
    return make_frame(camera_id="hall", sequence=sequence, captured=stamp, width=640, height=480)


def track(track_id: int, box: Box, since: float = -5.0, label: str = "person") -> Track:
    first = StageStamp.now().model_copy(update={"monotonic": T0 + since})
    last = StageStamp.now().model_copy(update={"monotonic": T0})
    return Track(track_id=track_id, camera_id="hall", label=label, box=box, score=0.9, first_seen=first, last_seen=last)


STANDING = Box(x1=300, y1=200, x2=335, y2=297)  # 35 x 97 px, mid-view


def run(look: SecondLook, script: Sequence[tuple[float, list[Track]]]) -> None:
    before: list[Track] = []
    for t, after in script:
        look.update(frame_at(t), before, after)
        before = after


def test_a_track_gone_for_a_moment_is_looked_at_around_its_feet() -> None:
    look = SecondLook(seconds=10, most=2)
    person = track(1, STANDING)
    run(look, [(0.0, [person]), (0.2, [])])
    assert look.spots(frame_at(0.2)) == []  # missed for one frame: detectors do that
    run(look, [(0.2, []), (0.2 + CONFIRM + 0.01, [])])
    (spot,) = look.spots(frame_at(0.6))
    # About a body height around the feet, in the frame's 4:3, inside the frame.
    assert spot.area.x1 < 300 and spot.area.x2 > 335 + 90 and spot.area.y2 > 297
    assert abs(spot.area.width / spot.area.height - 4 / 3) < 0.01 and spot.label == "person"
    assert look.spots(frame_at(10.4)) and not look.spots(frame_at(10.6))  # looked at for `seconds`


def test_no_spot_for_the_edge_a_flicker_or_someone_hidden() -> None:
    at_edge = track(1, Box(x1=600, y1=200, x2=639, y2=297))
    brief = track(2, STANDING, since=-0.5)  # followed only half a second
    hidden = track(3, Box(x1=100, y1=200, x2=135, y2=297))
    passer = track(4, Box(x1=110, y1=205, x2=145, y2=300))  # walks in front of it
    look = SecondLook()
    run(look, [(0.0, [at_edge, brief, hidden]), (0.2, [passer]), (0.6, [passer]), (1.0, [passer])])
    assert look.spots(frame_at(1.0)) == []


def test_a_spot_ends_when_its_person_is_back_standing_but_not_when_someone_lies_there() -> None:
    person = track(1, STANDING)
    lying = track(7, Box(x1=300, y1=265, x2=400, y2=300))  # what a second look finds
    standing_again = track(8, Box(x1=302, y1=198, x2=336, y2=296))  # a new id, upright, in the same place
    look = SecondLook()
    run(look, [(0.0, [person]), (0.2, []), (0.6, []), (0.8, [lying]), (1.0, [lying])])
    assert len(look.spots(frame_at(1.0))) == 1
    run(look, [(1.0, [lying]), (1.2, [standing_again])])
    assert look.spots(frame_at(1.2)) == []
    look = SecondLook()
    run(look, [(0.0, [person]), (0.2, []), (0.6, []), (0.8, [person])])  # the same id came back
    assert look.spots(frame_at(0.8)) == []


def test_older_spots_keep_their_place() -> None:
    people = [track(i, Box(x1=100 + 150 * i, y1=200, x2=135 + 150 * i, y2=297)) for i in range(3)]
    look = SecondLook(most=2)
    run(look, [(0.0, people), (0.2, people[1:]), (0.6, people[1:]), (0.8, []), (1.2, [])])
    assert [spot.track_id for spot in look.spots(frame_at(1.2))] == [0, 1]


def test_merge_counts_a_person_found_twice_once() -> None:
    found = [Detection(box=STANDING, label="person", score=0.4)]
    again = Detection(box=Box(x1=301, y1=201, x2=336, y2=296), label="person", score=0.6)
    lying = Detection(box=Box(x1=300, y1=265, x2=400, y2=300), label="person", score=0.3)
    merge(found, [again, lying])
    assert found == [again, lying]


class Counts(Detector):
    kind = "counts"
    labels = ("person",)
    shown: ClassVar[list[tuple[int, int]]] = []

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        Counts.shown += [(f.width, f.height) for f in frames]
        return [[] for _ in frames]


async def test_the_detector_is_shown_the_spot_only_when_it_has_time(tmp_path: Path) -> None:
    Counts.shown.clear()
    core = StubCore(tmp_path, cameras={"hall": CameraSourceConfig(motion=MotionSettings(crop=False))})
    detector = Counts("counts", Counts.Config(), make_context("counts", tmp_path, core))
    look = SecondLook()
    proc = FrameProcessor(core, lambda: {"counts": detector}, dict, dict, second_look=look)
    person = track(1, STANDING)
    run(look, [(0.0, [person]), (0.2, []), (0.6, [])])
    image = np.zeros((480, 640, 3), np.uint8)
    (result,) = await proc.process([frame_at(0.8).model_copy(update={"image": image})])
    spot = look.spots(frame_at(0.8))[0]
    assert Counts.shown == [(640, 480), (int(spot.area.width), int(spot.area.height))]
    assert result.looked == [spot.area]  # for the replay's JSON lines and the annotated video
    Counts.shown.clear()
    proc.waiting = lambda: 1  # another camera's frame waits: no second look
    await proc.process([frame_at(1.0).model_copy(update={"image": image})])
    proc.waiting, proc.busy = (lambda: 0), (lambda: 0.7)  # detection busy most of the time: none either
    await proc.process([frame_at(1.2).model_copy(update={"image": image})])
    assert Counts.shown == [(640, 480), (640, 480)]


def test_only_people_are_looked_for() -> None:
    look = SecondLook()
    knife = track(5, Box(x1=300, y1=250, x2=316, y2=258), label="weapon")  # put away in a pocket
    run(look, [(0.0, [knife]), (0.2, []), (0.6, [])])
    assert look.spots(frame_at(0.6)) == []
