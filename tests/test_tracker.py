"""The ByteTrack tracker plugin: real pedestrian trajectories (MOT ground truth), flags, history, labels.

The trajectories are the TUD-Campus and TUD-Stadtmitte ground truth that the ``motmetrics`` package
ships as data (read directly: the package itself does not import under numpy 2). They are fed as
detections with pose-like scores (0.3-0.5) and 10 % of them dropped, like a detector missing people.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
from peers.mot import mot_data

from campusguard.plugins.trackers.bytetrack import ByteTrack
from campusguard.sdk import Box, CameraSourceConfig, Detection, Frame, Keypoint, StageStamp, Track
from campusguard.sdk.testing import StubCore, make_context, make_frame
from campusguard.sdk.testing.conformance import TrackerConformance

WALL = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


MOT = mot_data()  # downloaded from PyPI once (the motmetrics wheel's data), then cached


def tracker(tmp_path: Path, core: StubCore | None = None, **options: object) -> ByteTrack:
    config = ByteTrack.Config.model_validate(options)
    return ByteTrack("people", config, make_context("people", tmp_path, core))


def frame_at(t: float, camera: str = "test-camera") -> Frame:
    return make_frame(camera_id=camera, sequence=round(t * 1000), captured=StageStamp(monotonic=t, wall=WALL))


def person(x: float, y: float, score: float = 0.4, label: str = "person", **extra: object) -> Detection:
    return Detection(box=Box(x1=x, y1=y, x2=x + 40, y2=y + 100), label=label, score=score, **extra)


def identity_switches(sequence: str, algorithm: str, fps: float, step: int, seed: int = 0) -> tuple[int, int]:
    """Feed MOT ground truth through the tracker; return (identity switches, people followed)."""
    assert MOT is not None
    boxes: dict[int, list[tuple[int, Box]]] = defaultdict(list)
    for row in (MOT / sequence / "gt.txt").read_text().splitlines():
        f, i, x, y, w, h = (float(v) for v in row.split(",")[:6])
        x1, y1 = max(x, 0.0), max(y, 0.0)
        boxes[int(f)].append((int(i), Box(x1=x1, y1=y1, x2=max(x1, x + w), y2=max(y1, y + h))))
    rng = random.Random(seed)
    tr = ByteTrack("t", ByteTrack.Config(algorithm=algorithm, frame_rate=fps / step), make_context("t", Path(".")))
    assigned: dict[int, int] = {}
    switches = 0
    for number in sorted(boxes)[::step]:
        kept = [(i, box) for i, box in boxes[number] if rng.random() >= 0.1]
        dets = [Detection(box=box, label="person", score=rng.uniform(0.3, 0.5)) for _, box in kept]
        tracks = tr.step(frame_at(number / fps), dets)
        by_box = {t.box: t.track_id for t in tracks}
        for truth, box in kept:
            got = by_box.get(box)
            if got is None:
                continue  # not confirmed yet
            if truth in assigned and assigned[truth] != got:
                switches += 1
            assigned[truth] = got
    return switches, len(assigned)


@pytest.mark.parametrize("algorithm", ["bytetrack", "sort", "ocsort"])
@pytest.mark.parametrize("sequence", ["TUD-Campus", "TUD-Stadtmitte"])
def test_ground_truth_tracks_keep_their_identity_at_full_rate(sequence: str, algorithm: str) -> None:
    # 25 fps, 10 % of detections missing, scores 0.3-0.5: measured 0 switches for all three.
    switches, people = identity_switches(sequence, algorithm, fps=25, step=1)
    assert people == {"TUD-Campus": 8, "TUD-Stadtmitte": 10}[sequence]
    assert switches <= 1


@pytest.mark.parametrize("sequence", ["TUD-Campus", "TUD-Stadtmitte"])
def test_ground_truth_at_detection_rate(sequence: str) -> None:
    # Every 5th frame (5 fps, the default detect rate): people walking close together may swap
    # (measured 0 on TUD-Campus and 2 on TUD-Stadtmitte with this seed; 0-5 over seeds).
    switches, people = identity_switches(sequence, "bytetrack", fps=25, step=5)
    assert people >= 7
    assert switches <= 3


def test_the_library_default_threshold_would_track_nobody(tmp_path: Path) -> None:
    # Why activation_threshold defaults to 0.25: pose models score people 0.2-0.5.
    strict = tracker(tmp_path, activation_threshold=0.7, high_threshold=0.7)
    ours = tracker(tmp_path)
    for n in range(5):
        assert strict.step(frame_at(n * 0.2), [person(100 + 5 * n, 100)]) == []
        seen = ours.step(frame_at(n * 0.2), [person(100 + 5 * n, 100)])
    assert len(seen) == 1


def test_tracks_carry_keypoints_times_and_a_bounded_history(tmp_path: Path) -> None:
    tr = tracker(tmp_path, history=5)
    kps = (Keypoint(x=120, y=110, score=0.9),)
    tracks: list[Track] = []
    for n in range(20):
        tracks = tr.step(frame_at(10 + n * 0.2), [person(100 + 4 * n, 100, keypoints=kps)])
    (track,) = tracks
    assert track.keypoints == kps
    assert len(track.history) == 5
    assert [p.at for p in track.history] == pytest.approx([10 + n * 0.2 for n in range(15, 20)])
    assert track.history[-1].box == track.box and track.history[-1].keypoints == kps
    assert track.first_seen.monotonic == pytest.approx(10.2)  # confirmed on its second frame
    assert track.last_seen.monotonic == pytest.approx(13.8)


def test_a_flag_persists_while_the_object_is_unseen(tmp_path: Path) -> None:
    tr = tracker(tmp_path, lost_seconds=2.0)
    for n in range(3):
        tracks = tr.step(frame_at(n * 0.2), [person(100 + 6 * n, 100)])
    (track,) = tracks
    track.flags.add("armed")  # as the weapon analyzer does
    for n in range(3, 8):  # one second unseen
        assert tr.step(frame_at(n * 0.2), []) == []
    (again,) = tr.step(frame_at(8 * 0.2), [person(100 + 6 * 8, 100)])
    assert again is track and again.flags == {"armed"}
    assert len(again.history) == 3  # only the frames it was seen (confirmed on its second)


def test_a_track_lost_longer_than_buffer_and_handover_ends_with_its_flags(tmp_path: Path) -> None:
    tr = tracker(tmp_path, lost_seconds=0.5, flag_handover_seconds=1.0)
    for n in range(3):
        tracks = tr.step(frame_at(n * 0.2), [person(100, 100)])
    (track,) = tracks
    track.flags.add("armed")
    for n in range(3, 15):  # 2.4 s unseen: past the buffer and the handover window
        tr.step(frame_at(n * 0.2), [])
    for n in range(15, 17):
        tracks = tr.step(frame_at(n * 0.2), [person(100, 100)])
    (new,) = tracks
    assert new.track_id != track.track_id and new.flags == set()


def test_an_armed_person_whose_id_switched_stays_armed(tmp_path: Path) -> None:
    tr = tracker(tmp_path, lost_seconds=0.5)  # handover: 3 s by default
    for n in range(3):
        tracks = tr.step(frame_at(n * 0.2), [person(100 + 4 * n, 100)])
    (armed,) = tracks
    armed.flags.add("armed")
    for n in range(3, 10):  # behind a pillar for 1.4 s: the library forgets the id
        tr.step(frame_at(n * 0.2), [])
    # Out again a little further on, with someone else across the room.
    for n in range(10, 12):
        tracks = tr.step(frame_at(n * 0.2), [person(130, 104), person(500, 300)])
    by_x = sorted(tracks, key=lambda t: t.box.x1)
    assert by_x[0].track_id != armed.track_id and by_x[0].flags == {"armed"}
    assert by_x[1].flags == set()


def test_a_lost_armed_track_hands_its_flag_over_once(tmp_path: Path) -> None:
    tr = tracker(tmp_path, lost_seconds=0.5)
    for n in range(3):
        tracks = tr.step(frame_at(n * 0.2), [person(100, 100)])
    (armed,) = tracks
    armed.flags.add("armed")
    for n in range(3, 10):  # the library forgets the id
        tr.step(frame_at(n * 0.2), [])
    for n in range(10, 12):  # one new id comes out where they were: the heir
        tracks = tr.step(frame_at(n * 0.2), [person(110, 100)])
    (heir,) = tracks
    assert heir.flags == {"armed"}
    for n in range(12, 14):  # a second newcomer in the same place, still within the window: not armed too
        tracks = tr.step(frame_at(n * 0.2), [person(110, 100), person(150, 100)])
    assert sorted(sorted(t.flags) for t in tracks) == [[], ["armed"]]


def test_the_heir_gives_the_flag_back_when_the_lost_track_returns(tmp_path: Path) -> None:
    tr = tracker(tmp_path, lost_seconds=2.0)
    for n in range(3):
        tracks = tr.step(frame_at(n * 0.2), [person(100, 100)])
    (armed,) = tracks
    armed.flags.add("armed")
    # The armed person is missed while someone else turns up right beside them: the guess is "same person".
    for n in range(3, 5):
        tracks = tr.step(frame_at(n * 0.2), [person(145, 100)])
    (other,) = tracks
    assert other.track_id != armed.track_id and other.flags == {"armed"}
    # The armed person is seen again (the library kept their id): the other one was someone else.
    tracks = tr.step(frame_at(1.0), [person(100, 100), person(145, 100)])
    flags = {t.track_id: t.flags for t in tracks}
    assert flags == {armed.track_id: {"armed"}, other.track_id: set()}


def test_someone_next_to_an_armed_person_still_tracked_is_not_armed(tmp_path: Path) -> None:
    tr = tracker(tmp_path)
    for n in range(3):
        tracks = tr.step(frame_at(n * 0.2), [person(100, 100)])
    (armed,) = tracks
    armed.flags.add("armed")
    for n in range(3, 6):  # a second person walks up beside them
        tracks = tr.step(frame_at(n * 0.2), [person(100, 100), person(125, 100)])
    flags = {t.track_id: t.flags for t in tracks}
    assert flags[armed.track_id] == {"armed"} and [f for i, f in flags.items() if i != armed.track_id] == [set()]


def test_cameras_are_tracked_apart(tmp_path: Path) -> None:
    tr = tracker(tmp_path)
    for n in range(3):
        a = tr.step(frame_at(n * 0.2, "east"), [person(100, 100)])
        b = tr.step(frame_at(n * 0.2, "west"), [person(100, 100), person(400, 100)])
    assert len(a) == 1 and len(b) == 2
    assert {t.camera_id for t in a} == {"east"} and {t.camera_id for t in b} == {"west"}
    assert a[0] is not b[0]


def test_other_labels_are_returned_from_their_first_sighting(tmp_path: Path) -> None:
    tr = tracker(tmp_path)
    gun = Detection(box=Box(x1=130, y1=150, x2=150, y2=160), label="weapon", score=0.6)
    (first,) = tr.step(frame_at(0.0), [person(100, 100), gun])  # the person is not confirmed yet
    assert first.label == "weapon"
    moved = Detection(box=Box(x1=136, y1=152, x2=156, y2=162), label="weapon", score=0.7)
    tracks = tr.step(frame_at(0.2), [person(104, 100), moved])
    assert sorted(t.label for t in tracks) == ["person", "weapon"]
    weapon = next(t for t in tracks if t.label == "weapon")
    people = next(t for t in tracks if t.label == "person")
    assert weapon is first and weapon.box == moved.box and weapon.score == 0.7
    assert people.track_id != weapon.track_id  # one id space per camera

    dropping = tracker(tmp_path, other_labels="drop")
    assert dropping.step(frame_at(0.0), [gun]) == []


def test_labels_are_tracked_apart(tmp_path: Path) -> None:
    tr = tracker(tmp_path, labels=["person", "car"])
    for n in range(3):
        tracks = tr.step(frame_at(n * 0.2), [person(100, 100), person(100, 100, label="car")])
    assert sorted(t.label for t in tracks) == ["car", "person"]
    assert len({t.track_id for t in tracks}) == 2


@pytest.mark.parametrize("algorithm", ["bytetrack", "sort", "ocsort"])
def test_each_algorithm_is_selectable(tmp_path: Path, algorithm: str) -> None:
    tr = tracker(tmp_path, algorithm=algorithm, min_frames=2, high_threshold=0.3)
    tracks: list[Track] = []
    for n in range(4):
        tracks = tr.step(frame_at(n * 0.2), [person(100 + 5 * n, 100), person(400 - 5 * n, 120)])
    assert len(tracks) == 2
    engine = tr._cameras["test-camera"].engines["person"]
    assert engine.tracker_id == algorithm


def test_the_motion_model_uses_the_cameras_detect_rate(tmp_path: Path) -> None:
    core = StubCore(tmp_path, cameras={"gate": CameraSourceConfig(detect_fps=12)})
    tr = tracker(tmp_path, core)
    tr.step(frame_at(0.0, "gate"), [])
    tr.step(frame_at(0.0, "other"), [])
    assert tr._cameras["gate"].frame_rate == 12
    assert tr._cameras["other"].frame_rate == 5


def test_repeated_timestamps_do_not_stall_tracking(tmp_path: Path) -> None:
    tr = tracker(tmp_path)
    tracks: list[Track] = []
    for n in range(3):
        tracks = tr.step(frame_at(1.0), [person(100 + n, 100)])  # a source with a frozen clock
    assert len(tracks) == 1


async def test_update_is_the_async_face_of_step(tmp_path: Path) -> None:
    tr = tracker(tmp_path)
    await tr.start()
    for n in range(2):
        tracks = await tr.update(frame_at(n * 0.2), [person(100, 100)])
    assert len(tracks) == 1
    await tr.stop()
    assert await tr.update(frame_at(1.0), [person(100, 100)]) == []  # stop forgets every camera


async def test_a_big_crowd_is_tracked_off_the_loop_with_the_same_objects(tmp_path: Path) -> None:
    tr = tracker(tmp_path)
    crowd = [[person(50 * (i % 12) + n, 40 + 110 * (i // 12)) for i in range(40)] for n in range(3)]
    first = await tr.update(frame_at(0.0), crowd[0])
    second = await tr.update(frame_at(0.2), crowd[1])
    third = await tr.update(frame_at(0.4), crowd[2])
    assert first == [] and len(second) == 40  # no cap on how many people
    assert [id(t) for t in third] == [id(t) for t in second]


class TestByteTrackConformance(TrackerConformance):
    component_class = ByteTrack
