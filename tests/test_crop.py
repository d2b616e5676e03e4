"""motion.crop: detectors see the area that moved plus the people tracked; detections come back whole."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import av
import numpy as np
import pytest
from peers.footage import PEDESTRIANS

from campusguard.core.pipeline.crop import crop_box
from campusguard.core.pipeline.processor import FrameProcessor
from campusguard.sdk import Box, CameraSourceConfig, Detection, Detector, Frame, Keypoint, MotionSettings, Track
from campusguard.sdk.testing import StubCore, make_context, make_frame

CROPPING = MotionSettings(crop=True, crop_margin=0.0, crop_max_area=0.5)


def track_at(box: Box) -> Track:
    frame = make_frame()
    return Track(track_id=1, camera_id="cam", label="person", box=box, score=0.9, first_seen=frame.captured,
                 last_seen=frame.captured)  # fmt: skip


def test_the_crop_covers_motion_and_tracks_or_nothing() -> None:
    image = np.zeros((480, 640, 3), np.uint8)
    frame = make_frame(image=image, regions=(Box(x1=100, y1=100, x2=200, y2=200),))
    # Grown to the frame's 4:3 around its centre: 100 x 100 becomes 133 x 100.
    assert crop_box(frame, [], CROPPING) == Box(x1=84, y1=100, x2=217, y2=200)
    standing = track_at(Box(x1=300, y1=50, x2=340, y2=150))  # someone still, outside the motion
    assert crop_box(frame, [standing], CROPPING) == Box(x1=100, y1=35, x2=340, y2=215)
    assert crop_box(frame, [], MotionSettings(crop=False)) is None
    assert crop_box(frame, [], MotionSettings()) is not None  # on by default
    assert crop_box(frame.model_copy(update={"regions": ()}), [], CROPPING) is None  # () means all of it
    wide = frame.model_copy(update={"regions": (Box(x1=0, y1=0, x2=600, y2=400),)})
    assert crop_box(wide, [], CROPPING) is None  # most of the frame: detect it whole
    margin = MotionSettings(crop=True, crop_margin=0.1)
    assert crop_box(frame, [], margin) == Box(x1=0, y1=36, x2=304, y2=264)  # 10% of 640, kept inside


def test_every_crop_has_the_frames_shape() -> None:
    """So that a model with a flexible input (MoveNet) keeps one input shape per camera."""
    rng = np.random.default_rng(3)
    for width, height in [(640, 480), (1280, 720), (480, 640)]:
        frame = make_frame(image=np.zeros((height, width, 3), np.uint8), width=width, height=height)
        for _ in range(200):
            x, y = rng.uniform(0, width - 2), rng.uniform(0, height - 2)
            region = Box(x1=x, y1=y, x2=rng.uniform(x + 1, width), y2=rng.uniform(y + 1, height))
            box = crop_box(frame.model_copy(update={"regions": (region,)}), [], CROPPING)
            if box is None:
                continue
            assert 0 <= box.x1 and box.x2 <= width and 0 <= box.y1 and box.y2 <= height
            assert box.x1 <= region.x1 + 1 and box.x2 >= region.x2 - 1  # the motion stays inside
            assert box.y1 <= region.y1 + 1 and box.y2 >= region.y2 - 1
            assert abs(box.width - box.height * width / height) <= 1.0 + 1e-9  # within a pixel


def test_a_crop_is_never_a_sliver() -> None:
    """A point-sized area (a degenerate region, no margin) still gives a picture, 15 % of the frame's sides."""
    frame = make_frame(image=np.zeros((480, 640, 3), np.uint8), regions=(Box(x1=630, y1=470, x2=630, y2=470),))
    assert crop_box(frame, [], CROPPING) == Box(x1=544, y1=408, x2=640, y2=480)


class Seer(Detector):
    """Finds one person in the middle of whatever it is shown; records the sizes it was shown."""

    kind = "seer"
    shown: ClassVar[list[tuple[int, int]]] = []

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        out = []
        for frame in frames:
            Seer.shown.append((frame.width, frame.height))
            assert frame.image.shape[:2] == (frame.height, frame.width)
            cx, cy = frame.width / 2, frame.height / 2
            box = Box(x1=cx - 10, y1=cy - 20, x2=cx + 10, y2=cy + 20)
            out.append([Detection(box=box, label="person", score=0.9, keypoints=(Keypoint(x=cx, y=cy, score=0.8),))])
        return out


async def test_detections_in_a_crop_come_back_in_the_whole_frames_pixels(tmp_path: Path) -> None:
    Seer.shown.clear()
    camera = CameraSourceConfig(motion=CROPPING)
    core = StubCore(tmp_path, cameras={"cam": camera})
    seer = Seer("seer", Seer.Config(), make_context("seer", tmp_path, core))
    processor = FrameProcessor(core, lambda: {"seer": seer}, dict, dict)
    frame = make_frame(camera_id="cam", image=np.zeros((480, 640, 3), np.uint8),
                       regions=(Box(x1=100, y1=200, x2=200, y2=300),))  # fmt: skip
    (result,) = await processor.process([frame])
    assert Seer.shown == [(133, 100)]  # the frame's shape
    (found,) = result.detections
    assert found.box == Box(x1=140.5, y1=230, x2=160.5, y2=270)  # the crop's middle, in frame pixels
    assert found.keypoints == (Keypoint(x=150.5, y=250, score=0.8),)


@pytest.mark.slow
async def test_movenet_on_cropped_motion_finds_the_same_people(tmp_path: Path) -> None:
    """Real footage: with crop on, MoveNet finds people on as many frames as on whole frames."""
    from campusguard.core.pipeline.motion import MotionGate
    from campusguard.detectors.movenet import MoveNetDetector

    detector = MoveNetDetector(
        "movenet", MoveNetDetector.Config(), make_context("movenet", tmp_path, StubCore(tmp_path))
    )
    await detector.start()
    try:
        counts = {}
        for crop in (False, True):
            settings = MotionSettings(crop=crop)
            core = StubCore(tmp_path, cameras={"cam": CameraSourceConfig(motion=settings)})
            processor = FrameProcessor(core, lambda: {"movenet": detector}, dict, dict)
            gate = MotionGate(settings)
            processor._last_tracks.clear()
            with_people = frames = 0
            with av.open(str(PEDESTRIANS)) as container:
                for n, picture in enumerate(container.decode(video=0)):
                    if n % 3:
                        continue
                    image = picture.to_ndarray(format="bgr24")
                    frame = make_frame(camera_id="cam", sequence=n, image=image, width=image.shape[1],
                                       height=image.shape[0])  # fmt: skip
                    motion = gate.update(image)  # as the camera runner does
                    if not (motion.motion or motion.calibrating):
                        continue
                    regions = tuple(Box(x1=r[0], y1=r[1], x2=r[2], y2=r[3]) for r in motion.regions)
                    frame = frame.model_copy(update={"regions": regions})
                    (result,) = await processor.process([frame])
                    frames += 1
                    with_people += any(d.label == "person" for d in result.detections)
            counts[crop] = with_people / max(frames, 1)
        print(f"frames with people: whole {counts[False]:.0%}, cropped {counts[True]:.0%}")
        assert counts[True] >= counts[False] - 0.05, counts
    finally:
        await detector.stop()
