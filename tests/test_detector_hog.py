"""The HOG people detector on real footage: people walking across a campus, seen from above.

Measured on frames 5-299 of the clip (min_height 64): a person found on 100 % of frames, 3.9 boxes
per frame (of up to ~8 people), 99.7 % of boxes on moving pixels, ~330 ms per frame on this 2-core
machine. Here a sample of six frames keeps the test short.
"""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from peers.footage import PEDESTRIANS

from campusguard.detectors.hog import HogPeopleDetector
from campusguard.sdk import Detection, Frame
from campusguard.sdk.testing.conformance import DetectorConformance
from campusguard.sdk.testing.stubs import make_context

CLIP = PEDESTRIANS
SAMPLE = range(25, 300, 50)  # 6 frames spread over the 30 s
GAP = 5  # frames between the two images that tell what moved


@pytest.fixture(scope="module")
def footage() -> list[np.ndarray]:
    with av.open(str(CLIP)) as container:
        frames = (f.to_ndarray(format="bgr24") for f in container.decode(video=0))
        return [image for image, _ in zip(frames, range(max(SAMPLE) + 1), strict=False)]


def as_frame(image: np.ndarray, sequence: int = 0) -> Frame:
    return Frame(camera_id="courtyard", sequence=sequence, width=image.shape[1], height=image.shape[0], image=image)


async def detect(tmp_path: Path, images: list[np.ndarray], **options: object) -> list[list[Detection]]:
    config = HogPeopleDetector.Config.model_validate(options)
    detector = HogPeopleDetector("hog", config, make_context("hog", tmp_path))
    await detector.start()
    try:
        return await detector.detect([as_frame(image, i) for i, image in enumerate(images)])
    finally:
        await detector.stop()


def on_motion(box: Detection, before: np.ndarray, now: np.ndarray) -> bool:
    """Whether the box covers pixels that changed: people here walk, the background stands still."""
    moved = cv2.absdiff(cv2.cvtColor(before, cv2.COLOR_BGR2GRAY), cv2.cvtColor(now, cv2.COLOR_BGR2GRAY)) > 25
    b = box.box
    return bool(moved[int(b.y1) : int(b.y2), int(b.x1) : int(b.x2)].mean() > 0.02)


async def test_finds_the_people_walking_on_most_frames(tmp_path: Path, footage: list[np.ndarray]) -> None:
    found = await detect(tmp_path, [footage[i] for i in SAMPLE], min_height=64)
    with_people = sum(1 for boxes in found if boxes)
    assert with_people >= 5, [len(boxes) for boxes in found]  # 100 % over the whole clip
    assert sum(len(boxes) for boxes in found) >= 2 * len(SAMPLE)  # up to ~8 people at once; HOG finds ~4
    boxes = [(box, i) for i, found_here in zip(SAMPLE, found, strict=True) for box in found_here]
    moving = sum(on_motion(box, footage[i - GAP], footage[i]) for box, i in boxes)
    assert moving >= 0.9 * len(boxes), f"{moving} of {len(boxes)} boxes on moving pixels"
    for box, _ in boxes:
        assert box.label == "person" and 0.5 < box.score <= 1.0
        assert 0 <= box.box.x1 < box.box.x2 <= 640 and 0 <= box.box.y1 < box.box.y2 <= 480
        assert 1.2 < box.box.height / box.box.width < 4  # upright people


async def test_finds_no_one_where_no_one_is(tmp_path: Path, footage: list[np.ndarray]) -> None:
    grass = np.ascontiguousarray(footage[0][280:480, 0:360])  # the lawn in the foreground, empty at the start
    flat = np.full((480, 640, 3), 128, dtype=np.uint8)
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    found = await detect(tmp_path, [grass, flat, noise], min_height=64)
    assert found == [[], [], []]


async def test_large_frames_are_scaled_down_and_boxes_scaled_back(tmp_path: Path, footage: list[np.ndarray]) -> None:
    image = footage[SAMPLE[1]]
    [small] = await detect(tmp_path, [image], min_height=64)
    big = cv2.resize(image, (1920, 1440), interpolation=cv2.INTER_LINEAR)
    # 3x the pixels, but max_width caps the working width at 960: the same search as above.
    [large] = await detect(tmp_path, [big], min_height=64, max_width=960)
    assert len(large) == len(small) > 0
    for a in small:
        scaled = (3 * a.box.x1, 3 * a.box.y1, 3 * a.box.x2, 3 * a.box.y2)
        assert max(iou(scaled, b) for b in large) > 0.7  # one pyramid level apart at most


def iou(a: tuple[float, float, float, float], d: Detection) -> float:
    b = (d.box.x1, d.box.y1, d.box.x2, d.box.y2)
    w, h = min(a[2], b[2]) - max(a[0], b[0]), min(a[3], b[3]) - max(a[1], b[1])
    inter = max(0.0, w) * max(0.0, h)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_win_stride_must_be_a_multiple_of_the_block_stride() -> None:
    with pytest.raises(ValueError, match="multiple of 8"):
        HogPeopleDetector.Config.model_validate({"win_stride": 12})


class TestHogConformance(DetectorConformance):
    component_class = HogPeopleDetector
