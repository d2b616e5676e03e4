"""Camera tamper detection on real footage (people walking across a campus, 10 fps), time simulated.

The clip is 30 s; played forward then backward it makes a minute of benign, ever-changing view. A
tamper is simulated on decoded frames: the monitor sees exactly what a covered, blurred or re-aimed
camera would deliver. With hold_seconds=1 at 10 fps, a condition starting at frame 100 is reported at
frame 110, and one ending at frame 200 is reported cleared at frame 210.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import cache

import av
import cv2
import numpy as np
import numpy.typing as npt
import pytest
from cv2.typing import MatLike
from peers.footage import PEDESTRIANS

from campusguard.core.pipeline.tamper import COVERED_SHARE, TamperChange, TamperMonitor
from campusguard.sdk.camera import TamperSettings

CLIP = PEDESTRIANS
FPS = 10.0
SETTINGS = TamperSettings(reference_seconds=2.0, hold_seconds=1.0)
Image = MatLike  # what OpenCV and PyAV hand back; numpy uint8 arrays here
Tamper = Callable[[Image], Image]


@cache
def clip() -> tuple[Image, ...]:
    if not CLIP.exists():
        pytest.fail(f"test footage not found: {CLIP} (it lives in ../shared/data beside the project)")
    with av.open(str(CLIP)) as container:
        return tuple(frame.to_ndarray(format="bgr24") for frame in container.decode(video=0))


def benign() -> tuple[Image, ...]:
    return clip() + clip()[::-1]


def play(monitor: TamperMonitor, frames: Iterable[Image]) -> list[tuple[int, str, bool]]:
    """Every change reported, as (frame index, condition, active)."""
    changes: list[tuple[int, str, bool]] = []
    for i, frame in enumerate(frames):
        change = monitor.update(frame, i / FPS)
        if change is not None:
            changes.append((i, change.condition, change.active))
    return changes


def tampered(frames: tuple[Image, ...], tamper: Tamper, start: int, stop: int) -> Iterator[Image]:
    """The frames, with ``tamper`` applied to [start, stop): built one at a time, as a camera would."""
    for i, frame in enumerate(frames):
        yield tamper(frame) if start <= i < stop else frame


# --- the tampers ---------------------------------------------------------------------------------


@cache
def dark_noise(shape: tuple[int, ...], level: float) -> tuple[Image, ...]:
    """A few frames of sensor noise around a dark grey level, made once."""
    rng = np.random.default_rng(int(level))
    return tuple(np.clip(rng.normal(level, 3, shape), 0, 255).astype(np.uint8) for _ in range(4))


def black(frame: Image) -> Image:
    """A lens cap or a spray-painted dome: near black, with sensor noise that changes frame to frame."""
    return dark_noise(frame.shape, 8)[int(frame[0, 0, 0]) % 4]


@cache
def hand_mask(height: int, width: int) -> npt.NDArray[np.bool_]:
    blob = np.zeros((height, width), np.uint8)
    cv2.ellipse(blob, (width // 2 + 60, height // 2 + 40), (int(width * 0.62), int(height * 0.62)), 15, 0, 360, 255, -1)
    assert blob.mean() / 255 > 0.9
    return blob > 0


def hand(frame: Image) -> Image:
    """A dark, soft blob over 92 % of the view; light still gets in at two corners."""
    mask = hand_mask(*frame.shape[:2])
    out = frame.copy()
    out[mask] = dark_noise(frame.shape, 18)[int(frame[0, 0, 0]) % 4][mask]
    return out


def blurred(sigma: float) -> Tamper:
    return lambda frame: cv2.GaussianBlur(frame, (0, 0), sigma)


def panned(frame: Image) -> Image:
    """Turned sideways by a quarter of the view."""
    return np.roll(frame, frame.shape[1] // 4, axis=1)


def rotated(frame: Image) -> Image:
    height, width = frame.shape[:2]
    turn = cv2.getRotationMatrix2D((width / 2, height / 2), 20, 1.0)
    return cv2.warpAffine(frame, turn, (width, height), borderMode=cv2.BORDER_REFLECT)


def reaimed(frame: Image) -> Image:
    """Pointed at another, overlapping part of the scene (the top-right three quarters)."""
    height, width = frame.shape[:2]
    return cv2.resize(frame[: height * 3 // 4, width // 4 :], (width, height))


def exposure(gain: float) -> Tamper:
    return lambda frame: cv2.convertScaleAbs(frame, alpha=gain)


# --- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [None, exposure(0.5), exposure(0.3), exposure(1.5)],
    ids=["as-filmed", "exposure-x0.5", "exposure-x0.3", "exposure-x1.5"],
)
def test_a_minute_of_benign_footage_reports_nothing(change: Tamper | None) -> None:
    frames = benign()
    monitor = TamperMonitor(SETTINGS)
    view = frames if change is None else tampered(frames, change, 200, 400)  # a sudden exposure step
    assert play(monitor, view) == []
    assert monitor.metrics is not None and monitor.metrics.similarity is not None


@pytest.mark.parametrize(
    ("tamper", "condition"),
    [
        (black, "covered"),
        (hand, "covered"),
        (blurred(6), "defocused"),
        (blurred(8), "defocused"),
        (panned, "moved"),
        (rotated, "moved"),
        (reaimed, "moved"),
    ],
    ids=["black", "hand", "blur-6", "blur-8", "panned", "rotated", "reaimed"],
)
def test_a_tamper_is_reported_once_and_cleared_once(tamper: Tamper, condition: str) -> None:
    monitor = TamperMonitor(SETTINGS)
    changes: list[TamperChange] = []
    for i, frame in enumerate(tampered(clip(), tamper, 100, 200)):
        change = monitor.update(frame, i / FPS)
        if change is not None:
            changes.append(change)
            assert i == (110 if change.active else 210)
    assert [(c.condition, c.active) for c in changes] == [(condition, True), (condition, False)]
    started = changes[0]
    if condition == "covered":
        assert started.score >= COVERED_SHARE  # the share of the view that is dark or flat
    elif condition == "defocused":
        assert started.score < SETTINGS.defocus_ratio  # sharpness against the reference's
    else:
        assert started.score < SETTINGS.moved_similarity  # similarity to the reference
    assert started.detail


def test_a_long_tamper_is_not_learned_as_the_new_normal() -> None:
    """A minute turned away (twice the reference's adaptation time here): it still clears at once."""
    frames = clip()
    turned_away = [panned(f) for f in frames[100:] + frames[::-1] + frames[:100]]
    view = [*frames[:100], *turned_away, *frames[100:200]]
    assert play(TamperMonitor(SETTINGS), view) == [(110, "moved", True), (710, "moved", False)]


def test_only_a_cover_is_reported_while_learning_and_covered_frames_are_not_learned() -> None:
    settings = TamperSettings(reference_seconds=3.0, hold_seconds=0.5)
    monitor = TamperMonitor(settings)
    frames = clip()[:100]
    learned_at = 30  # the frame 3 s after the first completes the reference; judging starts after it
    seen = []
    for i, frame in enumerate(tampered(frames, black, 10, 20)):
        change = monitor.update(frame, i / FPS)
        if change is not None:
            seen.append((i, change.condition, change.active))
        assert monitor.metrics is not None
        assert (monitor.metrics.similarity is None) == (i <= learned_at)
    assert seen == [(15, "covered", True), (25, "covered", False)]


def test_a_cover_does_not_also_count_as_moved_or_defocused_when_it_lifts_on_a_moved_view() -> None:
    """Covered first, then uncovered onto a turned view: moved follows the cover, not alongside it."""
    frames = clip()
    view = [*frames[:100], *map(black, frames[100:150]), *map(panned, frames[150:250]), *frames[250:]]
    assert play(TamperMonitor(SETTINGS), view) == [
        (110, "covered", True),
        (160, "covered", False),
        (161, "moved", True),  # held since frame 150: one change per frame, so queued behind the cover's
        (260, "moved", False),
    ]


def test_a_new_resolution_of_the_same_view_changes_nothing() -> None:
    frames = clip()
    view = [*frames[:150], *(cv2.resize(f, (1280, 960)) for f in frames[150:])]
    monitor = TamperMonitor(SETTINGS)
    assert play(monitor, view) == []
    assert monitor.metrics is not None and monitor.metrics.similarity is not None


def test_reset_clears_an_active_condition_and_learns_again() -> None:
    frames = clip()
    monitor = TamperMonitor(SETTINGS)
    assert play(monitor, tampered(frames[:150], panned, 100, 150)) == [(110, "moved", True)]
    monitor.reset()  # the camera was re-aimed on purpose: learn the new view
    change = monitor.update(panned(frames[150]), 15.0)
    assert change == TamperChange("moved", False, "reference re-learned", 0.0)
    assert monitor.metrics is not None and monitor.metrics.similarity is None  # learning again


def test_disabled_reports_nothing() -> None:
    monitor = TamperMonitor(TamperSettings(enabled=False, reference_seconds=0, hold_seconds=0))
    assert play(monitor, map(black, clip()[:20])) == []
    assert monitor.metrics is None
