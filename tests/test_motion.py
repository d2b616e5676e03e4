"""The motion gate on real footage: people walking across a campus, seen from above (PETS, 10 fps)."""

from __future__ import annotations

from functools import cache

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from cv2.typing import MatLike
from peers.footage import PEDESTRIANS

from campusguard.core.pipeline.motion import MotionGate, MotionResult, Region
from campusguard.sdk.camera import MotionSettings

CLIP = PEDESTRIANS
Image = MatLike  # what OpenCV and PyAV hand back; numpy uint8 arrays here


@cache
def clip() -> tuple[Image, ...]:
    if not CLIP.exists():
        pytest.fail(f"test footage not found: {CLIP} (it lives in ../shared/data beside the project)")
    with av.open(str(CLIP)) as container:
        return tuple(frame.to_ndarray(format="bgr24") for frame in container.decode(video=0))


def run(gate: MotionGate, frames: list[Image] | tuple[Image, ...]) -> list[MotionResult]:
    return [gate.update(frame) for frame in frames]


def coverage(regions: tuple[Region, ...], shape: tuple[int, ...]) -> npt.NDArray[np.bool_]:
    covered = np.zeros(shape[:2], dtype=bool)
    for x1, y1, x2, y2 in regions:
        covered[y1:y2, x1:x2] = True
    return covered


def walkers(frames: tuple[Image, ...], i: int, step: int) -> npt.NDArray[np.bool_]:
    """Ground truth: pixels that changed strongly against both the previous and the next frame,
    i.e. where a person is now (not where they were or will be)."""
    grey = [cv2.GaussianBlur(cv2.cvtColor(frames[j], cv2.COLOR_BGR2GRAY), (5, 5), 0) for j in (i - step, i, i + step)]
    return (cv2.absdiff(grey[1], grey[0]) > 50) & (cv2.absdiff(grey[1], grey[2]) > 50)


@pytest.mark.parametrize("step", [1, 2], ids=["10fps", "5fps"])
def test_regions_cover_the_walkers_and_little_else(step: int) -> None:
    frames = clip()
    gate = MotionGate(MotionSettings())
    truth_pixels = found_pixels = 0
    areas = []
    for i in range(0, len(frames) - step, step):
        result = gate.update(frames[i])
        if result.calibrating or i < 2 * step:
            continue
        truth = walkers(frames, i, step)
        covered = coverage(result.regions, frames[i].shape)
        assert result.motion, f"frame {i}: people walk in every frame of this clip"
        assert (truth & covered).sum() >= 0.95 * truth.sum(), f"frame {i}"
        truth_pixels += int(truth.sum())
        found_pixels += int((truth & covered).sum())
        areas.append(covered.mean())
    assert found_pixels >= 0.999 * truth_pixels  # measured 0.9997 (10 fps) and 1.0 (5 fps)
    assert np.mean(areas) < 0.3  # measured 0.15 (10 fps) and 0.19 (5 fps) of the frame
    assert len(areas) >= 100


def test_a_static_view_gives_no_motion_after_calibration() -> None:
    settings = MotionSettings()
    results = run(MotionGate(settings), [clip()[0]] * 40)
    calibration, after = results[: settings.calibration_frames], results[settings.calibration_frames :]
    assert all(r.calibrating and not r.motion and r.regions == () for r in calibration)
    assert all(r == MotionResult(motion=False, regions=(), changed_fraction=0.0, calibrating=False) for r in after)


def test_no_calibration_frames_judges_from_the_second_frame() -> None:
    frames = clip()
    results = run(MotionGate(MotionSettings(calibration_frames=0)), frames[:20])
    assert not any(r.calibrating for r in results)
    assert not results[0].motion  # nothing to compare with yet
    assert all(r.motion for r in results[1:])


def test_a_doubled_exposure_is_lightning_not_motion_everywhere() -> None:
    frames, settings = clip(), MotionSettings()
    gate = MotionGate(settings)
    run(gate, frames[:60])
    bright = [cv2.convertScaleAbs(f, alpha=2.0) for f in frames[60:90]]
    results = run(gate, bright)
    flash = results[0]
    assert flash.changed_fraction > settings.lightning  # measured 0.83
    assert (flash.motion, flash.regions, flash.calibrating) == (False, (), True)
    # The background restarts from the new light: the next frames calibrate, then people show again.
    assert all(r.calibrating and not r.motion for r in results[: settings.calibration_frames])
    assert all(r.motion and not r.calibrating for r in results[settings.calibration_frames :])
    assert max(r.changed_fraction for r in results[settings.calibration_frames :]) < 0.1


def test_a_darker_exposure_is_absorbed_by_the_contrast_stretch() -> None:
    """x0.3 stays inside the grey range, so stretching undoes it: same regions, no recalibration."""
    frames = clip()
    plain, dimmed = MotionGate(MotionSettings()), MotionGate(MotionSettings())
    run(plain, frames[:60])
    run(dimmed, frames[:60])
    for frame in frames[60:90]:
        expected, got = plain.update(frame), dimmed.update(cv2.convertScaleAbs(frame, alpha=0.3))
        assert got.motion and not got.calibrating
        assert got.changed_fraction < 0.1  # not motion everywhere
        overlap = coverage(got.regions, frame.shape) & coverage(expected.regions, frame.shape)
        assert overlap.sum() >= 0.8 * coverage(expected.regions, frame.shape).sum()


def test_always_mode_reports_the_whole_frame_without_looking() -> None:
    gate = MotionGate(MotionSettings(mode="always"))
    results = run(gate, [*clip()[:5], np.empty((0, 0, 3), np.uint8)])  # an empty array: it never reads pixels
    assert all(r == MotionResult(motion=True, regions=(), changed_fraction=0.0, calibrating=False) for r in results)


def test_regions_are_in_input_pixels() -> None:
    """The same view at 1280x960 (every pixel doubled) shrinks to the same picture: regions exactly x2."""
    frames = clip()[:60]
    small, large = MotionGate(MotionSettings()), MotionGate(MotionSettings())
    checked = 0
    for frame in frames:
        doubled = cv2.resize(frame, (1280, 960), interpolation=cv2.INTER_NEAREST)
        a, b = small.update(frame), large.update(doubled)
        assert b.regions == tuple(tuple(2 * v for v in box) for box in a.regions)
        assert all(0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 960 for x1, y1, x2, y2 in b.regions)
        checked += len(b.regions)
    assert checked > 50


@pytest.mark.parametrize("speed", [4, 8, 16])
def test_a_moving_square_on_a_still_background_gives_one_region_around_it(speed: int) -> None:
    background = clip()[0]
    gate = MotionGate(MotionSettings())
    run(gate, [background] * gate.settings.calibration_frames)
    side = 40
    for t in range(30):
        x, y = 60 + speed * t, 430 - t * speed // 8  # across the lawn
        frame = background.copy()
        frame[y : y + side, x : x + side] = (20, 25, 20)  # dark, so every edge of it differs from grass
        result = gate.update(frame)
        assert len(result.regions) == 1, f"step {t}: {result.regions}"
        x1, y1, x2, y2 = result.regions[0]
        slack = 4  # 2 px of the 320-wide downscale: the blur softens an edge against similar grass
        assert x1 <= x + slack and y1 <= y + slack and x + side <= x2 + slack and y + side <= y2 + slack
        # and hugs it: no trail of earlier positions (the square plus dilation and padding is 2.25x)
        assert (x2 - x1) * (y2 - y1) <= 3 * side * side, f"step {t}: {result.regions}"


def test_a_new_resolution_restarts_calibration() -> None:
    frames = clip()
    gate = MotionGate(MotionSettings())
    run(gate, frames[:30])
    smaller = [cv2.resize(f, (320, 240), interpolation=cv2.INTER_AREA) for f in frames[30:60]]
    results = run(gate, smaller)
    assert all(r.calibrating for r in results[: gate.settings.calibration_frames])
    later = results[gate.settings.calibration_frames :]
    assert all(r.motion for r in later)
    assert all(x2 <= 320 and y2 <= 240 for r in later for _, _, x2, y2 in r.regions)
