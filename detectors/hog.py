"""OpenCV's HOG people detector: the fallback that needs no model file.

Dalal-Triggs HOG with OpenCV's bundled linear SVM (opencv-python 4.x; 5.0 dropped it). It is weak
next to a neural detector: use it when nothing better is installed. Its 64x128 window finds people
about 96 px tall, so frames are scaled by ``96 / min_height`` (capped by ``max_width``) first.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campusguard.sdk import Box, ComponentContext, Detection, Detector, Frame, Registry, hookimpl

if TYPE_CHECKING:
    import numpy as np

WINDOW_PERSON_HEIGHT = 96  # px of person inside the 128-px detection window
# The window's margins around the person, as fractions of its size (as OpenCV's peopledetect sample).
MARGIN_X, MARGIN_Y = 0.15, 0.05


class HogConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    win_stride: int = Field(default=8, ge=8, description="window step in px (a multiple of 8); larger is faster")
    scale: float = Field(default=1.05, gt=1.0, le=2.0, description="pyramid step between window sizes")
    confidence: float = Field(default=0.5, gt=0.0, lt=1.0, description="score a box needs (SVM margin m: m/(1+m))")
    iou: float = Field(default=0.45, gt=0.0, le=1.0, description="overlap above which NMS merges boxes")
    min_height: int = Field(default=96, ge=16, description="shortest person to find, in frame pixels")
    max_width: int = Field(default=1280, ge=64, description="frames are scaled to at most this width")

    @field_validator("win_stride")
    @classmethod
    def _block_multiple(cls, value: int) -> int:
        if value % 8:
            raise ValueError("win_stride must be a multiple of 8 (HOG's block stride)")
        return value


class HogPeopleDetector(Detector):
    """People from OpenCV's HOG + linear SVM; scores are the SVM margin m mapped to m / (1 + m)."""

    kind = "hog_people"
    Config = HogConfig
    labels = ("person",)
    input_size = (0, 0)  # any size: the image pyramid adapts

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        self._hog: Any = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def options(self) -> HogConfig:
        assert isinstance(self.config, HogConfig)
        return self.config

    async def start(self) -> None:
        await self.stop()
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"detector-{self.name}")
        try:
            self._hog = await asyncio.get_running_loop().run_in_executor(executor, _load)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        hog, executor = self._hog, self._executor
        if hog is None or executor is None:
            raise RuntimeError(f"detector {self.name!r} is not started")
        images = [frame.image for frame in frames]
        return await asyncio.get_running_loop().run_in_executor(executor, self._detect_all, hog, images)

    def _detect_all(self, hog: Any, images: list[np.ndarray | None]) -> list[list[Detection]]:
        return [[] if image is None else self._detect_one(hog, image) for image in images]

    def _detect_one(self, hog: Any, image: np.ndarray) -> list[Detection]:
        import cv2
        import numpy as np

        opts = self.options
        if image.ndim == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)  # HOG takes grey or BGR
        height, width = image.shape[:2]
        factor = min(WINDOW_PERSON_HEIGHT / opts.min_height, opts.max_width / width)
        if abs(factor - 1.0) > 1e-3:
            image = cv2.resize(image, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_LINEAR)
        margin = opts.confidence / (1 - opts.confidence)  # the score threshold as an SVM margin
        stride = (opts.win_stride, opts.win_stride)
        # groupThreshold=0: raw windows, merged by NMS below (OpenCV's grouping drops lone true hits)
        rects, weights = hog.detectMultiScale(
            image, hitThreshold=margin, winStride=stride, padding=(8, 8), scale=opts.scale, groupThreshold=0
        )
        if len(rects) == 0:
            return []
        boxes = np.asarray(rects, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(weights, dtype=np.float32).reshape(-1)
        kept = np.asarray(cv2.dnn.NMSBoxes(boxes, scores, margin, opts.iou), dtype=np.intp).reshape(-1)  # type: ignore[arg-type]
        found = []
        for i in kept:
            x, y, w, h = boxes[i] / factor
            x1, y1 = max(0.0, x + MARGIN_X * w), max(0.0, y + MARGIN_Y * h)
            x2, y2 = min(float(width), x + (1 - MARGIN_X) * w), min(float(height), y + (1 - MARGIN_Y) * h)
            if x2 <= x1 or y2 <= y1:
                continue
            score = float(scores[i]) / (1 + float(scores[i]))
            found.append(Detection(box=Box(x1=x1, y1=y1, x2=x2, y2=y2), label="person", score=score))
        return found

    async def stop(self) -> None:
        executor, self._executor, self._hog = self._executor, None, None
        if executor is not None:
            await asyncio.to_thread(executor.shutdown, True)


def _load() -> Any:
    import cv2
    import numpy as np

    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), dtype=np.float32))
    return hog


@hookimpl
def campusguard_register_detectors(registry: Registry[Detector]) -> None:
    registry.add(HogPeopleDetector)
