"""Fall, fight and weapon analyzers: synthetic sequences built from a real pose, and real benign footage.

The standing skeleton every synthetic sequence starts from is a real one when the MoveNet detector and
its model are installed (the most upright, fully visible person MoveNet finds on the campus clip);
otherwise a crafted one with standard anthropometric proportions (Winter, *Biomechanics and Motor
Control of Human Movement*: shoulders at 0.818 of body height, hips 0.530, wrists 0.485, knees 0.285,
ankles 0.039). Falls are that skeleton rotated about the feet onto the ground, with keypoint jitter the
size MoveNet shows on a person standing still; see ``fall.py`` for what that leaves out.

The benign test runs the three analyzers behind the real tracker over the whole clip (PETS pedestrians,
seen from above): MoveNet people with keypoints when it is installed, else OpenCV HOG boxes.
"""

from __future__ import annotations

import asyncio
import importlib
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from peers.footage import PEDESTRIANS

from campusguard.plugins.analyzers import pose
from campusguard.plugins.analyzers.fall import FallAnalyzer
from campusguard.plugins.analyzers.fight import FightAnalyzer
from campusguard.plugins.analyzers.weapon import WeaponAnalyzer
from campusguard.sdk import Analyzer, Box, Detection, Frame, Keypoint, Observation, StageStamp, Track, TrackPoint
from campusguard.sdk.testing import make_context, make_frame
from campusguard.sdk.testing.conformance import AnalyzerConformance

CLIP = PEDESTRIANS
CAMERA = "test-camera"
T0 = 1000.0

# (x, height above the floor, score) in body heights, frontal view, origin on the floor between the feet.
Pose = list[tuple[float, float, float]]
CRAFTED: Pose = [
    (0.0, 0.91, 0.9),  # nose
    (-0.03, 0.935, 0.9),
    (0.03, 0.935, 0.9),  # eyes
    (-0.06, 0.92, 0.8),
    (0.06, 0.92, 0.8),  # ears
    (-0.13, 0.818, 0.9),
    (0.13, 0.818, 0.9),  # shoulders
    (-0.15, 0.63, 0.8),
    (0.15, 0.63, 0.8),  # elbows
    (-0.16, 0.485, 0.8),
    (0.16, 0.485, 0.8),  # wrists
    (-0.085, 0.53, 0.9),
    (0.085, 0.53, 0.9),  # hips
    (-0.08, 0.285, 0.8),
    (0.08, 0.285, 0.8),  # knees
    (-0.08, 0.039, 0.8),
    (0.08, 0.039, 0.8),  # ankles
]
JITTER = 0.012  # keypoint noise, in body heights: MoveNet's on the clip's people standing still


# -- real footage: frames, MoveNet or HOG people --------------------------------------------------


def clip_images() -> list[Any]:
    av = importlib.import_module("av")
    if not CLIP.exists():
        pytest.fail(f"{CLIP} is not there (the footage lives in ../shared/data)")
    with av.open(str(CLIP)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def movenet_people(images: list[Any], every: int) -> list[list[Detection]] | None:
    """MoveNet on every ``every``-th frame, or None when the detector or its model is not installed."""
    try:
        from campusguard.detectors.movenet import MoveNetDetector
    except ImportError:
        return None

    async def run() -> list[list[Detection]] | None:
        detector = MoveNetDetector("movenet", MoveNetDetector.Config(), make_context("movenet", Path(".")))
        try:
            await detector.start()
        except Exception:  # ConfigError: model not installed
            return None
        try:
            frames = [make_frame(sequence=i, image=image) for i, image in enumerate(images[::every])]
            return await detector.detect(frames)
        finally:
            await detector.stop()

    return asyncio.run(run())


def hog_people(images: list[Any], every: int) -> list[list[Detection]]:
    """HOG people on every ``every``-th frame. The clip's people are 50-90 px tall, under HOG's 128 px
    window, so the walkway band is upscaled 1.6x (and only it, to keep the test fast)."""
    cv2 = importlib.import_module("cv2")
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    top, bottom, scale = 40, 330, 1.6
    out = []
    for image in images[::every]:
        band = cv2.resize(image[top:bottom], None, fx=scale, fy=scale)
        rects, weights = hog.detectMultiScale(band, winStride=(8, 8), padding=(0, 0), scale=1.1)
        found = []
        for (x, y, w, h), weight in zip(rects, weights, strict=True):
            box = Box(x1=x / scale, y1=top + y / scale, x2=(x + w) / scale, y2=top + (y + h) / scale)
            found.append(Detection(box=box, label="person", score=min(1.0, 0.5 + float(weight) / 4)))
        out.append(found)
    return out


@dataclass
class Clip:
    people: list[list[Detection]]
    fps: float
    source: str


@pytest.fixture(scope="module")
def clip() -> Clip:
    # Every other frame: 5 fps, a camera's default detection rate (and half the test's time).
    images = clip_images()
    found = movenet_people(images, 2)
    if found is not None:
        return Clip(found, 5.0, "movenet")
    return Clip(hog_people(images, 2), 5.0, "hog")


def tallest_upright(people: list[list[Detection]]) -> Pose | None:
    """The tallest fully visible, upright person's keypoints, in body heights from the floor between the feet."""
    best: tuple[float, Pose] | None = None
    for found in people:
        for person in found:
            kps = person.keypoints
            if kps is None or min(k.score for k in kps) < 0.3 or (pose.torso_angle(kps, 0.3) or 90) > 8:
                continue
            box = person.box
            feet_x = (kps[pose.L_ANKLE].x + kps[pose.R_ANKLE].x) / 2
            shape = [((k.x - feet_x) / box.height, (box.y2 - k.y) / box.height, k.score) for k in kps]
            if best is None or box.height > best[0]:
                best = (box.height, shape)
    return best[1] if best is not None else None


@pytest.fixture(scope="module")
def standing(clip: Clip) -> Pose:
    """The real standing skeleton (MoveNet on the clip), else the crafted one."""
    return tallest_upright(clip.people) or CRAFTED


# -- synthetic scenes -----------------------------------------------------------------------------


@dataclass
class Body:
    box: Box
    keypoints: tuple[Keypoint, ...] | None
    label: str = "person"
    score: float = 0.9


def place(
    shape: Pose,
    feet: tuple[float, float],
    height: float,
    angle: float = 0.0,
    rng: random.Random | None = None,
    keypoints: bool = True,
) -> Body:
    """``shape`` standing at ``feet`` (pixels), ``height`` px tall, rotated ``angle`` degrees about the feet
    (90: lying to the right), with MoveNet-like jitter when ``rng`` is given. The box is the keypoints'
    extent padded like a detector's (head top, feet)."""
    a = math.radians(angle)
    points = []
    for x, up, score in shape:
        if rng is not None:
            x, up = x + rng.gauss(0, JITTER), up + rng.gauss(0, JITTER)
        px = feet[0] + height * (x * math.cos(a) + up * math.sin(a))
        py = feet[1] - height * (up * math.cos(a) - x * math.sin(a))
        points.append(Keypoint(x=px, y=py, score=score))
    pad = 0.06 * height
    xs, ys = [p.x for p in points], [p.y for p in points]
    box = Box(x1=min(xs) - pad, y1=min(ys) - pad, x2=max(xs) + pad, y2=max(ys) + pad)
    return Body(box, tuple(points) if keypoints else None)


def with_arms(shape: Pose, t: float, amplitude: float, hertz: float, legs: float = 0.0) -> Pose:
    """Wrists swinging (arms in antiphase) and, with ``legs``, ankles too: punches, kicks, or a gait."""
    out = list(shape)
    for index, sign in ((pose.L_WRIST, 1), (pose.R_WRIST, -1)):
        x, up, score = out[index]
        swing = sign * amplitude * math.sin(2 * math.pi * hertz * t)
        out[index] = (x + swing, up + abs(swing) * 0.5, score)
    for index, sign in ((pose.L_ANKLE, 1), (pose.R_ANKLE, -1)):
        x, up, score = out[index]
        out[index] = (x + sign * legs * math.sin(2 * math.pi * hertz * t), up, score)
    return out


def stamp(t: float) -> StageStamp:
    return StageStamp(monotonic=t, wall=datetime(2024, 9, 2, 8, tzinfo=UTC) + timedelta(seconds=t))


class Scene:
    """Drives an analyzer like the pipeline: canonical Track objects kept across frames, history appended."""

    def __init__(self, analyzer: Analyzer, fps: float = 10.0) -> None:
        self.analyzer, self.dt = analyzer, 1 / fps
        self.t, self.sequence = T0, 0
        self.tracks: dict[int, Track] = {}
        self.seen: list[tuple[float, Observation]] = []

    def frame(self, motion: bool = True) -> Frame:
        return make_frame(camera_id=CAMERA, sequence=self.sequence, captured=stamp(self.t), motion=motion)

    def track(self, track_id: int, body: Body) -> Track:
        track = self.tracks.get(track_id)
        if track is None:
            track = self.tracks[track_id] = Track(
                track_id=track_id,
                camera_id=CAMERA,
                label=body.label,
                box=body.box,
                score=body.score,
                first_seen=stamp(self.t),
                last_seen=stamp(self.t),
            )
        track.box, track.keypoints, track.score, track.last_seen = body.box, body.keypoints, body.score, stamp(self.t)
        track.history = [*track.history[-63:], TrackPoint(at=self.t, box=body.box, keypoints=body.keypoints)]
        return track

    async def step(self, bodies: dict[int, Body], reuse: bool = False) -> list[Observation]:
        """One frame with ``bodies`` by track id; ``reuse``: no motion, the last tracks handed over again."""
        tracks = [self.tracks[i] for i in bodies] if reuse else [self.track(i, b) for i, b in bodies.items()]
        found = await self.analyzer.analyze(self.frame(motion=not reuse), tracks)
        self.seen.extend((self.t, o) for o in found)
        self.t += self.dt
        self.sequence += 1
        return found

    async def run(self, seconds: float, bodies: Any) -> None:
        """``bodies(t)`` (t from the start of this run) for ``seconds``."""
        start = self.t
        while self.t - start < seconds - 1e-9:
            await self.step(bodies(self.t - start))


def build(cls: type[Analyzer], tmp_path: Path, **options: Any) -> Analyzer:
    return cls(cls.kind, cls.Config.model_validate(options), make_context(cls.kind, tmp_path))


def kinds(scene: Scene) -> list[str]:
    return [o.kind for _, o in scene.seen]


# -- fall -----------------------------------------------------------------------------------------

FEET, HEIGHT = (320.0, 400.0), 120.0


def standing_still(shape: Pose, rng: random.Random, at: tuple[float, float] = FEET) -> Any:
    return lambda t: {1: place(shape, at, HEIGHT, 0, rng)}


def falling(shape: Pose, rng: random.Random, seconds: float, side: int = 1, keypoints: bool = True) -> Any:
    """Tipping over about the feet, accelerating like a falling body (angle ~ t^2)."""
    return lambda t: {1: place(shape, FEET, HEIGHT, side * 90 * min(1.0, (t / seconds) ** 2), rng, keypoints)}


def lying(shape: Pose, rng: random.Random, side: int = 1, keypoints: bool = True) -> Any:
    return lambda t: {1: place(shape, FEET, HEIGHT, side * 90, rng, keypoints)}


@pytest.mark.parametrize("fps", [5.0, 10.0])
@pytest.mark.parametrize("side", [1, -1])
async def test_fall_then_still_is_one_medical_fall(standing: Pose, tmp_path: Path, fps: float, side: int) -> None:
    rng = random.Random(1)
    scene = Scene(build(FallAnalyzer, tmp_path, stillness_seconds=5.0), fps)
    await scene.run(2.0, standing_still(standing, rng))
    await scene.run(0.5, falling(standing, rng, 0.5, side))
    down = scene.t
    await scene.run(9.0, lying(standing, rng, side))
    assert kinds(scene) == ["medical_fall"]
    at, observation = scene.seen[0]
    assert 5.0 <= at - down <= 5.0 + 2 / fps  # reported once stillness reached T, not per frame
    assert observation.track_ids == [1] and observation.evidence.track_ids == [1]
    assert len(observation.evidence.boxes) == 2 and observation.evidence.frame_id
    assert observation.attributes["torso_angle"] >= 60 and observation.attributes["hip_drop"] >= 0.35
    assert set(observation.attributes["signals"]) == {"torso", "aspect", "drop"}
    assert observation.attributes["still_seconds"] >= 5.0


async def test_stillness_counts_frames_without_motion(standing: Pose, tmp_path: Path) -> None:
    """The pipeline hands the last tracks over again when the motion gate sees nothing: that is stillness."""
    rng = random.Random(2)
    scene = Scene(build(FallAnalyzer, tmp_path, stillness_seconds=5.0))
    await scene.run(2.0, standing_still(standing, rng))
    await scene.run(0.5, falling(standing, rng, 0.5))
    await scene.run(0.5, lying(standing, rng))
    for _ in range(60):
        await scene.step({1: place(standing, FEET, HEIGHT)}, reuse=True)
    assert kinds(scene) == ["medical_fall"]


async def test_fall_from_boxes_alone(standing: Pose, tmp_path: Path) -> None:
    """A detector without keypoints (HOG, YOLO): the box turning wide and dropping is the fall."""
    rng = random.Random(3)
    scene = Scene(build(FallAnalyzer, tmp_path))
    await scene.run(2.0, lambda t: {1: place(standing, FEET, HEIGHT, 0, rng, keypoints=False)})
    await scene.run(0.6, falling(standing, rng, 0.6, keypoints=False))
    await scene.run(7.0, lying(standing, rng, keypoints=False))
    assert kinds(scene) == ["medical_fall"]
    assert "torso_angle" not in scene.seen[0][1].attributes


async def test_lying_down_slowly_is_not_a_fall(standing: Pose, tmp_path: Path) -> None:
    """Decided: lying down over 10 s (on the grass, say) is not reported, however still the person stays
    afterwards; the cost is a person who slowly slumps down, which this analyzer misses."""
    rng = random.Random(4)
    scene = Scene(build(FallAnalyzer, tmp_path))
    await scene.run(2.0, standing_still(standing, rng))
    await scene.run(10.0, lambda t: {1: place(standing, FEET, HEIGHT, 90 * t / 10, rng)})
    await scene.run(20.0, lying(standing, rng))
    assert kinds(scene) == []


async def test_stumble_and_get_up_is_not_a_fall(standing: Pose, tmp_path: Path) -> None:
    rng = random.Random(5)
    scene = Scene(build(FallAnalyzer, tmp_path))
    await scene.run(2.0, standing_still(standing, rng))
    await scene.run(0.5, falling(standing, rng, 0.5))
    await scene.run(3.0, lying(standing, rng))  # down for 3 s, under the 5 s of stillness
    await scene.run(1.5, lambda t: {1: place(standing, FEET, HEIGHT, 90 * (1 - t / 1.5), rng)})
    await scene.run(10.0, standing_still(standing, rng))
    assert kinds(scene) == []


async def test_moving_on_the_ground_waits_for_stillness(standing: Pose, tmp_path: Path) -> None:
    """Down and moving (crawling along) is not reported until the person stays still for T."""
    rng = random.Random(6)
    scene = Scene(build(FallAnalyzer, tmp_path))
    await scene.run(2.0, standing_still(standing, rng))
    await scene.run(0.5, falling(standing, rng, 0.5))
    await scene.run(8.0, lambda t: {1: place(standing, (FEET[0] - 15 * t, FEET[1]), HEIGHT, 90, rng)})
    assert kinds(scene) == []
    await scene.run(6.0, lambda t: {1: place(standing, (FEET[0] - 120, FEET[1]), HEIGHT, 90, rng)})
    assert kinds(scene) == ["medical_fall"]


async def test_sitting_down_on_the_ground_is_not_a_fall(standing: Pose, tmp_path: Path) -> None:
    """Hips drop to the floor fast and the legs stick out, but the torso stays upright."""
    rng = random.Random(7)
    seated = [(x, up - 0.45, s) if i <= pose.R_HIP else (0.0, 0.0, s) for i, (x, up, s) in enumerate(standing)]
    seated[pose.L_KNEE], seated[pose.R_KNEE] = (0.25, 0.06, 0.8), (0.27, 0.04, 0.8)
    seated[pose.L_ANKLE], seated[pose.R_ANKLE] = (0.48, 0.03, 0.8), (0.5, 0.02, 0.8)
    scene = Scene(build(FallAnalyzer, tmp_path))
    await scene.run(2.0, standing_still(standing, rng))
    await scene.run(10.0, lambda t: {1: place(seated, FEET, HEIGHT, 0, rng)})
    assert kinds(scene) == []


async def test_a_second_fall_after_getting_up_is_a_new_episode(standing: Pose, tmp_path: Path) -> None:
    rng = random.Random(8)
    scene = Scene(build(FallAnalyzer, tmp_path, stillness_seconds=3.0))
    for _ in range(2):
        await scene.run(2.0, standing_still(standing, rng))
        await scene.run(0.5, falling(standing, rng, 0.5))
        await scene.run(5.0, lying(standing, rng))
    assert kinds(scene) == ["medical_fall", "medical_fall"]


@pytest.mark.parametrize(("where", "reported"), [(FEET, True), ((FEET[0] + 300, FEET[1]), False)])
async def test_fall_across_a_new_track_id(
    standing: Pose, tmp_path: Path, where: tuple[float, float], reported: bool
) -> None:
    """The tracker loses the person as they fall and starts a new track: the fall still counts if the new
    track lies where the lost one stood (and not if it lies elsewhere)."""
    rng = random.Random(17)
    scene = Scene(build(FallAnalyzer, tmp_path))
    await scene.run(2.0, standing_still(standing, rng))
    await scene.run(0.3, lambda t: {1: place(standing, FEET, HEIGHT, 30 * t / 0.3, rng)})
    await scene.run(8.0, lambda t: {2: place(standing, where, HEIGHT, 90, rng)})
    assert kinds(scene) == (["medical_fall"] if reported else [])
    if reported:
        observation = scene.seen[0][1]
        assert observation.track_ids == [2] and observation.evidence.track_ids == [2, 1]


async def test_fall_ignores_other_cameras_and_labels(standing: Pose, tmp_path: Path) -> None:
    rng = random.Random(9)
    scene = Scene(build(FallAnalyzer, tmp_path, cameras=["elsewhere"]))
    await scene.run(2.0, standing_still(standing, rng))
    await scene.run(0.5, falling(standing, rng, 0.5))
    await scene.run(7.0, lying(standing, rng))
    assert kinds(scene) == []


# -- fight ----------------------------------------------------------------------------------------


def pair(shape: Pose, rng: random.Random, gap: float, amplitude: float, hertz: float, drift: float = 0.0) -> Any:
    """Two people ``gap`` body heights apart, facing each other, arms swinging; ``drift``: walking together
    at that many body heights per second, limbs in a gait."""

    def bodies(t: float) -> dict[int, Body]:
        x = 200 + drift * HEIGHT * t
        legs = 0.12 if drift else 0.0
        return {
            1: place(with_arms(shape, t, amplitude, hertz, legs), (x, 400), HEIGHT, 0, rng),
            2: place(with_arms(shape, t + 0.13, amplitude, hertz, legs), (x + gap * HEIGHT, 400), HEIGHT, 0, rng),
        }

    return bodies


@pytest.mark.parametrize("fps", [5.0, 10.0])
async def test_two_people_close_flailing_is_one_fight(standing: Pose, tmp_path: Path, fps: float) -> None:
    rng = random.Random(10)
    scene = Scene(build(FightAnalyzer, tmp_path), fps)
    await scene.run(2.0, pair(standing, rng, 0.6, 0.0, 1.0))  # standing together, calm
    assert kinds(scene) == []
    start = scene.t
    await scene.run(2.0, pair(standing, rng, 0.6, 0.3, 2.0))  # blows: ~2 body heights/s
    await scene.run(10.0, pair(standing, rng, 0.6, 0.3, 2.0))  # still going: the same episode
    assert kinds(scene) == ["fight"]
    at, observation = scene.seen[0]
    assert at - start <= 2.0
    assert observation.track_ids == [1, 2] and observation.evidence.track_ids == [1, 2]
    assert len(observation.evidence.boxes) == 2
    assert min(observation.attributes["limb_speed"].values()) >= 1.5


async def test_far_apart_or_slow_is_not_a_fight(standing: Pose, tmp_path: Path) -> None:
    rng = random.Random(11)
    far = Scene(build(FightAnalyzer, tmp_path))
    await far.run(5.0, pair(standing, rng, 3.0, 0.3, 2.0))
    slow = Scene(build(FightAnalyzer, tmp_path))
    await slow.run(5.0, pair(standing, rng, 0.6, 0.2, 0.7))  # gesturing while talking
    assert kinds(far) == [] and kinds(slow) == []


async def test_walking_or_jogging_together_is_not_a_fight(standing: Pose, tmp_path: Path) -> None:
    rng = random.Random(12)
    walking = Scene(build(FightAnalyzer, tmp_path))
    await walking.run(5.0, pair(standing, rng, 0.5, 0.08, 1.0, drift=0.8))
    jogging = Scene(build(FightAnalyzer, tmp_path))
    await jogging.run(5.0, pair(standing, rng, 0.5, 0.25, 1.6, drift=1.8))  # limbs fast, but travelling
    assert kinds(walking) == [] and kinds(jogging) == []


async def test_one_person_flailing_next_to_a_bystander(standing: Pose, tmp_path: Path) -> None:
    def scene_bodies(rng: random.Random) -> Any:
        return lambda t: {
            1: place(with_arms(standing, t, 0.3, 2.0), (200, 400), HEIGHT, 0, rng),
            2: place(standing, (200 + 0.6 * HEIGHT, 400), HEIGHT, 0, rng),
        }

    both = Scene(build(FightAnalyzer, tmp_path))
    await both.run(4.0, scene_bodies(random.Random(13)))
    one = Scene(build(FightAnalyzer, tmp_path, both_active=False))
    await one.run(4.0, scene_bodies(random.Random(13)))
    assert kinds(both) == [] and kinds(one) == ["fight"]


async def test_a_third_person_joining_stays_in_the_episode(standing: Pose, tmp_path: Path) -> None:
    rng = random.Random(14)
    scene = Scene(build(FightAnalyzer, tmp_path, cooldown_seconds=5.0))
    fight = pair(standing, rng, 0.6, 0.3, 2.0)
    await scene.run(3.0, fight)

    def three(t: float) -> dict[int, Body]:
        third = place(with_arms(standing, t + 0.3, 0.3, 2.0), (200 + 1.2 * HEIGHT, 400), HEIGHT, 0, rng)
        return {**fight(t), 3: third}

    await scene.run(4.0, three)
    await scene.run(6.0, pair(standing, rng, 0.6, 0.0, 1.0))  # calm for longer than the cooldown
    await scene.run(3.0, fight)  # a new episode
    assert kinds(scene) == ["fight", "fight"]


# -- weapon ---------------------------------------------------------------------------------------


def person_at(x: float, rng: random.Random | None = None) -> Body:
    return place(CRAFTED, (x, 400), HEIGHT, 0, rng)


def weapon_near(person: Body, score: float = 0.8, dx: float = 0.0) -> Body:
    wrist = person.keypoints[pose.R_WRIST] if person.keypoints else None
    assert wrist is not None
    x, y = wrist.x + dx, wrist.y
    return Body(Box(x1=x - 8, y1=y - 4, x2=x + 8, y2=y + 4), None, label="weapon", score=score)


async def frames_with_weapon(scene: Scene, pattern: str, people: dict[int, Body], holder: int) -> None:
    """One frame per character of ``pattern``: ``x`` the weapon is seen at ``holder``'s hand, ``.`` it is not."""
    for seen in pattern:
        bodies = dict(people)
        if seen == "x":
            bodies[100] = weapon_near(people[holder])
        await scene.step(bodies)


async def test_weapon_in_3_of_5_frames_arms_the_person_once(tmp_path: Path) -> None:
    scene = Scene(build(WeaponAnalyzer, tmp_path))
    people = {1: person_at(200)}
    await frames_with_weapon(scene, "x.x.x", people, 1)
    assert kinds(scene) == ["weapon"]
    assert "armed" in scene.tracks[1].flags
    observation = scene.seen[0][1]
    assert observation.track_ids == [1] and observation.evidence.track_ids == [1, 100]
    assert len(observation.evidence.boxes) == 2 and observation.attributes["weapon_score"] == pytest.approx(0.8)
    assert observation.attributes["frames"] == "3/5"
    await frames_with_weapon(scene, "xxxxxxxxxx", people, 1)  # still holding it: no repeats
    assert kinds(scene) == ["weapon"]


async def test_weapon_in_2_of_5_frames_is_nothing(tmp_path: Path) -> None:
    scene = Scene(build(WeaponAnalyzer, tmp_path))
    people = {1: person_at(200)}
    await frames_with_weapon(scene, "x..x..x..x..x..", people, 1)  # never 3 in any 5
    assert kinds(scene) == [] and "armed" not in scene.tracks[1].flags


async def test_one_detection_handed_over_again_is_one_vote(tmp_path: Path) -> None:
    """Without motion the pipeline skips detection and hands the last tracks over again: not new sightings."""
    scene = Scene(build(WeaponAnalyzer, tmp_path))
    bodies = {1: person_at(200)}
    bodies[100] = weapon_near(bodies[1])
    await scene.step(bodies)
    for _ in range(5):
        await scene.step(bodies, reuse=True)
    assert kinds(scene) == [] and "armed" not in scene.tracks[1].flags


async def test_armed_persists_after_the_weapon_is_put_away(tmp_path: Path) -> None:
    scene = Scene(build(WeaponAnalyzer, tmp_path))
    people = {1: person_at(200)}
    await frames_with_weapon(scene, "xxx", people, 1)
    rng = random.Random(15)
    for i in range(50):  # weapon gone; the person walks on
        await scene.step({1: person_at(200 + 3 * i, rng)})
    assert "armed" in scene.tracks[1].flags
    assert kinds(scene) == ["weapon"]


async def test_weapon_goes_to_the_nearest_person(tmp_path: Path) -> None:
    scene = Scene(build(WeaponAnalyzer, tmp_path))
    people = {1: person_at(100), 2: person_at(200), 3: person_at(300)}
    await frames_with_weapon(scene, "xxx", people, 2)
    assert kinds(scene) == ["weapon"] and scene.seen[0][1].track_ids == [2]
    assert [sorted(scene.tracks[i].flags) for i in (1, 2, 3)] == [[], ["armed"], []]


async def test_weak_or_unattended_weapons(tmp_path: Path) -> None:
    weak = Scene(build(WeaponAnalyzer, tmp_path, min_score=0.9))
    await frames_with_weapon(weak, "xxxxx", {1: person_at(200)}, 1)
    assert kinds(weak) == []
    loose = Scene(build(WeaponAnalyzer, tmp_path))
    far_weapon = weapon_near(person_at(600))
    for _ in range(10):
        await loose.step({1: person_at(100), 100: far_weapon})
    assert kinds(loose) == ["weapon"]
    assert loose.seen[0][1].track_ids == [] and "armed" not in loose.tracks[1].flags


async def test_repeat_seconds_sends_updates(tmp_path: Path) -> None:
    scene = Scene(build(WeaponAnalyzer, tmp_path, repeat_seconds=2.0))
    await frames_with_weapon(scene, "x" * 45, {1: person_at(200)}, 1)  # 4.5 s
    assert [o.attributes["update"] for _, o in scene.seen] == [False, True, True]


def test_k_must_not_exceed_n() -> None:
    with pytest.raises(ValueError, match="k"):
        WeaponAnalyzer.Config(k=6, n=5)


# -- pure functions -------------------------------------------------------------------------------


def test_pose_measures() -> None:
    upright = place(CRAFTED, FEET, HEIGHT)
    flat = place(CRAFTED, FEET, HEIGHT, 90)
    head_down = place(CRAFTED, FEET, HEIGHT, 180)
    assert pose.torso_angle(upright.keypoints, 0.3) == pytest.approx(0, abs=1)
    assert pose.torso_angle(flat.keypoints, 0.3) == pytest.approx(90, abs=1)
    assert pose.torso_angle(head_down.keypoints, 0.3) == pytest.approx(180, abs=1)
    assert pose.torso_angle(upright.keypoints, 0.95) is None  # nothing scores that high
    assert pose.aspect_ratio(upright.box) < 0.5 < 1 < pose.aspect_ratio(flat.box)
    hidden = tuple(k.model_copy(update={"score": 0.0}) if i == pose.L_HIP else k for i, k in enumerate(CRAFTED_KPS))
    assert pose.hip_point(hidden, 0.3) == (CRAFTED_KPS[pose.R_HIP].x, CRAFTED_KPS[pose.R_HIP].y)


CRAFTED_KPS: Sequence[Keypoint] = place(CRAFTED, FEET, HEIGHT).keypoints or ()


def test_limb_speed_ignores_walking_past() -> None:
    a, b = place(CRAFTED, FEET, HEIGHT), place(CRAFTED, (FEET[0] + 60, FEET[1]), HEIGHT)
    assert pose.limb_speed((0.0, a.box, a.keypoints), (0.5, b.box, b.keypoints), 0.3) == pytest.approx(0, abs=1e-6)
    swung = place(with_arms(CRAFTED, 0.125, 0.3, 2.0), FEET, HEIGHT)  # a quarter period: wrist 0.3 out
    speed = pose.limb_speed((0.0, a.box, a.keypoints), (0.125, swung.box, swung.keypoints), 0.3)
    assert speed is not None and speed > 1.5


# -- behind the real tracker ------------------------------------------------------------------------


async def test_fall_and_weapon_behind_the_tracker(standing: Pose, tmp_path: Path) -> None:
    """ByteTrack keeps the fallen person's id (the box turns from tall to wide) and the weapon's label,
    and the ``armed`` flag stays on its canonical track after the weapon is gone."""
    from campusguard.plugins.trackers.bytetrack import ByteTrack

    fps = 5.0
    tracker = ByteTrack("bytetrack", ByteTrack.Config(frame_rate=fps), make_context("bytetrack", tmp_path))
    fall, weapon = build(FallAnalyzer, tmp_path), build(WeaponAnalyzer, tmp_path)
    rng = random.Random(16)
    script = [place(standing, FEET, HEIGHT, 0, rng) for _ in range(10)]
    script += [place(standing, FEET, HEIGHT, 90 * ((i + 1) / 3) ** 2, rng) for i in range(3)]
    script += [place(standing, FEET, HEIGHT, 90, rng) for _ in range(35)]
    found: list[Observation] = []
    for i, body in enumerate(script):
        people = [Detection(box=body.box, label="person", score=0.5, keypoints=body.keypoints)]
        armed_person = place(CRAFTED, (100, 400), HEIGHT)
        people.append(Detection(box=armed_person.box, label="person", score=0.5, keypoints=armed_person.keypoints))
        if i in (4, 5, 7):
            knife = weapon_near(armed_person)
            people.append(Detection(box=knife.box, label="weapon", score=0.7))
        frame = make_frame(camera_id=CAMERA, sequence=i, captured=stamp(T0 + i / fps))
        tracks = await tracker.update(frame, people)
        found += await fall.analyze(frame, tracks) + await weapon.analyze(frame, tracks)
    assert sorted(o.kind for o in found) == ["medical_fall", "weapon"]
    by_kind = {o.kind: o for o in found}
    armed = [t for t in tracks if "armed" in t.flags]
    assert [t.track_id for t in armed] == by_kind["weapon"].track_ids and armed[0].box.center[0] < 200
    assert by_kind["medical_fall"].track_ids != by_kind["weapon"].track_ids


# -- benign real footage --------------------------------------------------------------------------


async def test_no_fall_fight_or_weapon_on_the_campus_clip(clip: Clip, tmp_path: Path) -> None:
    from campusguard.plugins.trackers.bytetrack import ByteTrack

    tracker = ByteTrack("bytetrack", ByteTrack.Config(frame_rate=clip.fps), make_context("bytetrack", tmp_path))
    analyzers = [build(cls, tmp_path) for cls in (FallAnalyzer, FightAnalyzer, WeaponAnalyzer)]
    found: list[Observation] = []
    people: set[int] = set()
    with_pose = 0
    for i, detections in enumerate(clip.people):
        frame = make_frame(camera_id=CAMERA, sequence=i, captured=stamp(T0 + i / clip.fps))
        tracks = await tracker.update(frame, detections)
        people |= {t.track_id for t in tracks}
        with_pose += sum(1 for t in tracks if pose.torso_angle(t.keypoints, 0.3) is not None)
        for analyzer in analyzers:
            found.extend(await analyzer.analyze(frame, tracks))
    assert len(people) >= 8, f"{clip.source}: too few people tracked for the test to mean anything"
    if clip.source == "movenet":
        assert with_pose >= 150, "MoveNet gave too few poses"
    assert [(o.kind, o.track_ids, o.attributes) for o in found] == []


# -- conformance ----------------------------------------------------------------------------------


class TestFallConformance(AnalyzerConformance):
    component_class = FallAnalyzer


class TestFightConformance(AnalyzerConformance):
    component_class = FightAnalyzer


class TestWeaponConformance(AnalyzerConformance):
    component_class = WeaponAnalyzer
