"""Camera health: notices a camera that was covered, defocused or moved, and when it recovers.

Everything runs on one small grey downscale per frame (a few hundred microseconds):

- covered: nearly all of the view is dark (below ``covered_brightness``) or flat (within
  ``covered_contrast`` grey levels of its median). Shares of pixels, not a mean, so a bright
  timestamp overlay or light leaking past a hand does not hide a cover. Needs no reference.
- defocused: sharpness (variance of the Laplacian over the variance of the picture, so dimming does
  not read as blur) below ``defocus_ratio`` times the reference's.
- moved: normalised cross-correlation of a coarse edge map (gradient magnitude at 80 px wide) with
  the reference's below ``moved_similarity``. Gradients ignore lighting and, this coarse, defocus and
  a few walkers: measured 0.82-0.93 on busy footage, ~0.55 for a 5 % pan, under 0.4 from a 10 % pan.

The reference is the mean over the first ``reference_seconds`` of usable frames, then follows benign
change slowly, but only on frames where nothing is wrong: a tamper is never learned as the new normal.
A condition is reported once it has held for ``hold_seconds``, and once more when it has been clear for
as long. Covered takes precedence: while the view is covered, moved and defocused are not judged.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np
import numpy.typing as npt

from campusguard.sdk.camera import TamperSettings

from .motion import shrink

if TYPE_CHECKING:
    from cv2.typing import MatLike

Condition = Literal["covered", "defocused", "moved"]

COVERED_SHARE = 0.85  # share of the view that must be dark or flat; a real scene measured <= 0.52 even at 30 % light
_WIDTH = 160  # the analysis downscale: covered and sharpness
_EDGE_WIDTH = 80  # the edge map for moved: coarse enough that walkers and camera shake barely register
_ADAPT_FACTOR = 6.0  # after learning, the reference follows benign change over ~6x reference_seconds
_ADAPT_MIN_SECONDS = 30.0
_MAX_STEP_SECONDS = 1.0  # a gap in frames (a stall) must not let one frame overwrite the reference


@dataclass(frozen=True)
class TamperChange:
    """A condition that started (``active``) or ended; ``score`` is the measurement behind it."""

    condition: Condition
    active: bool
    detail: str
    score: float


@dataclass(frozen=True)
class TamperMetrics:
    """The last frame's measurements; the reference-relative ones are None while learning."""

    brightness: float
    contrast: float
    covered_share: float
    sharpness_ratio: float | None
    similarity: float | None


class _Hold:
    """A condition's reported state, which flips only after the raw state has disagreed for ``hold``."""

    def __init__(self) -> None:
        self.active = False
        self.since: float | None = None

    def step(self, raw: bool, now: float, hold: float) -> bool:
        if raw == self.active:
            self.since = None
            return False
        if self.since is None:
            self.since = now
        if now - self.since < hold:
            return False
        self.active, self.since = raw, None
        return True


class TamperMonitor:
    """One camera's health checks; call :meth:`update` once per frame, from one thread at a time."""

    def __init__(self, settings: TamperSettings) -> None:
        self.settings = settings
        self.metrics: TamperMetrics | None = None
        self._holds: dict[Condition, _Hold] = {"covered": _Hold(), "defocused": _Hold(), "moved": _Hold()}
        self._pending: deque[TamperChange] = deque()
        self._size = (0, 0)
        self._last_now: float | None = None
        self._adapt_seconds = max(_ADAPT_FACTOR * settings.reference_seconds, _ADAPT_MIN_SECONDS)
        self._forget_reference()

    def reset(self) -> None:
        """Learn the view afresh (after a deliberate re-aim); active moved/defocused are reported cleared."""
        for condition in ("defocused", "moved"):
            hold = self._holds[condition]
            if hold.active:
                self._pending.append(TamperChange(condition, False, "reference re-learned", 0.0))
            hold.active, hold.since = False, None
        self._forget_reference()

    def update(self, image: MatLike, now: float) -> TamperChange | None:
        """Measure one frame taken at ``now`` (monotonic seconds); returns at most one change."""
        if not self.settings.enabled:
            return None
        step = 0.0 if self._last_now is None else min(max(now - self._last_now, 0.0), _MAX_STEP_SECONDS)
        self._last_now = now
        grey = self._downscale(image)
        mean, std, share = _cover_measures(grey, self.settings)
        covered = share >= COVERED_SHARE
        detail = f"{share:.0%} of the view dark or flat (mean grey {mean:.0f}, spread {std:.0f})"
        self._step("covered", covered, now, detail, share)
        if covered:
            # A covered view also looks blurred and moved; and it must not become the reference.
            self.metrics = TamperMetrics(mean, std, share, None, None)
            return self._next()

        edges = _edge_map(grey)
        sharpness = _sharpness(grey, std)
        if self._ref_edges is None:
            self._learn(edges, sharpness, now)
            self.metrics = TamperMetrics(mean, std, share, None, None)
            return self._next()

        ratio = sharpness / max(self._ref_sharpness, 1e-9)
        similarity = _similarity(edges, self._ref_edges)
        self.metrics = TamperMetrics(mean, std, share, ratio, similarity)
        moved = similarity < self.settings.moved_similarity
        defocused = ratio < self.settings.defocus_ratio
        self._step("moved", moved, now, f"view similarity {similarity:.2f} to the reference", similarity)
        self._step("defocused", defocused, now, f"sharpness {ratio:.2f} of the reference", ratio)
        if not (moved or defocused):
            alpha = step / self._adapt_seconds
            cv2.accumulateWeighted(edges, self._ref_edges, alpha)
            self._ref_sharpness += alpha * (sharpness - self._ref_sharpness)
        return self._next()

    def _forget_reference(self) -> None:
        self._ref_edges: npt.NDArray[np.float32] | None = None
        self._ref_sharpness = 0.0
        self._learn_edges: npt.NDArray[np.float32] | None = None
        self._learn_sharpness = 0.0
        self._learn_count = 0
        self._learn_start = 0.0

    def _learn(self, edges: npt.NDArray[np.float32], sharpness: float, now: float) -> None:
        """Average the first ``reference_seconds`` of usable frames: walkers fade out of the mean."""
        if self._learn_edges is None:
            self._learn_edges = np.zeros_like(edges)
            self._learn_start = now
        self._learn_edges += edges
        self._learn_sharpness += sharpness
        self._learn_count += 1
        if now - self._learn_start >= self.settings.reference_seconds:
            self._ref_edges = (self._learn_edges / self._learn_count).astype(np.float32)
            self._ref_sharpness = self._learn_sharpness / self._learn_count
            self._learn_edges = None

    def _downscale(self, image: MatLike) -> MatLike:
        height, width = image.shape[:2]
        size = (min(_WIDTH, width), max(2, round(height * min(_WIDTH, width) / width)))
        if size != self._size:
            if self._size != (0, 0):
                self.reset()  # another aspect ratio is another view; the same one at a new resolution is not
            self._size = size
        small = shrink(image, size)
        return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small

    def _step(self, condition: Condition, raw: bool, now: float, detail: str, score: float) -> None:
        if self._holds[condition].step(raw, now, self.settings.hold_seconds):
            self._pending.append(TamperChange(condition, raw, detail, score))

    def _next(self) -> TamperChange | None:
        return self._pending.popleft() if self._pending else None


def _cover_measures(grey: MatLike, settings: TamperSettings) -> tuple[float, float, float]:
    """Mean, spread and the share of pixels that are dark or within the flat band around the median."""
    mean, std = (float(v[0][0]) for v in cv2.meanStdDev(grey))
    cdf = np.cumsum(cv2.calcHist([grey], [0], None, [256], [0, 256]).ravel())
    total = float(cdf[-1])
    darkest = math.ceil(settings.covered_brightness) - 1  # the highest grey level below covered_brightness
    dark = float(cdf[darkest]) if darkest >= 0 else 0.0
    median = int(np.searchsorted(cdf, total / 2))
    band = int(settings.covered_contrast)
    low, high = max(median - band, 0), min(median + band, 255)
    flat = float(cdf[high] - (cdf[low - 1] if low else 0.0))
    return mean, std, max(dark, flat) / total


def _sharpness(grey: MatLike, std: float) -> float:
    """Laplacian variance over picture variance: blur lowers it, a change of exposure does not."""
    laplacian = cv2.Laplacian(grey, cv2.CV_32F)
    return float(cv2.meanStdDev(laplacian)[1][0][0]) ** 2 / max(std * std, 1e-9)


def _edge_map(grey: MatLike) -> npt.NDArray[np.float32]:
    height, width = grey.shape
    size = (min(_EDGE_WIDTH, width), max(2, round(height * min(_EDGE_WIDTH, width) / width)))
    small = cv2.GaussianBlur(shrink(grey, size), (3, 3), 0)
    small_f = small.astype(np.float32)
    gx = cv2.Sobel(small_f, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(small_f, cv2.CV_32F, 0, 1)
    return np.asarray(cv2.magnitude(gx, gy), dtype=np.float32)


def _similarity(edges: npt.NDArray[np.float32], reference: npt.NDArray[np.float32]) -> float:
    """Normalised cross-correlation (Pearson's r over the pixels); 1.0 when the reference has no structure."""
    (mean_e,), (std_e,) = cv2.meanStdDev(edges)
    (mean_r,), (std_r,) = cv2.meanStdDev(reference)
    if std_r[0] < 1e-3:
        return 1.0  # a featureless reference cannot tell a moved camera
    if std_e[0] < 1e-3:
        return 0.0
    covariance = cv2.mean(cv2.multiply(edges - mean_e[0], reference - mean_r[0]))[0]
    return float(covariance / (std_e[0] * std_r[0]))
