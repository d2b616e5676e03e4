"""MoveNet MultiPose Lightning (Apache-2.0): person boxes and 17 COCO keypoints on LiteRT, CPU.

The weights are never fetched at run time: ``campusguard models install movenet`` puts them in the
model cache (see :mod:`campusguard.detectors.models`), or ``model`` points at your own copy.

Crowds: the model returns at most 6 people per pass. When a pass comes back full, the frame is
also run as overlapping tiles (2x2 by default) and the results merged, so there is no fixed cap.
``tile = "always"`` tiles every frame: small, distant people are found far more often (sample
footage: 4.9 instead of 1.8 people per frame) at ~5x the CPU; ``"off"`` keeps one pass per frame.

Motion regions (``Frame.regions``) are not used: the model always sees the whole frame, so a
person's scale does not jump with the motion boxes.

This module stays light to import (listing plugins); numpy, OpenCV and LiteRT load in ``start()``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from campusguard.sdk import ConfigError, Detection, Detector, Frame, Registry, hookimpl

from . import models

if TYPE_CHECKING:
    from ._movenet_pose import MoveNetEngine, Person

INSTALL_COMMAND = "campusguard models install movenet"


class MoveNetConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Path | None = Field(
        default=None,
        description="a MoveNet MultiPose .tflite; relative to the config file's folder; "
        f"default: the installed one (`{INSTALL_COMMAND}`)",
    )
    input_size: int = Field(default=256, ge=32, le=1024, description="long side of the model input, multiple of 32")
    threads: int = Field(default=2, ge=1, le=64, description="LiteRT CPU threads")
    confidence: float = Field(default=0.2, ge=0.0, le=1.0, description="minimum person score")
    keypoint_confidence: float = Field(
        default=0.1, ge=0.0, le=1.0, description="keypoints scoring lower are reported with score 0 (not seen)"
    )
    tile: Literal["auto", "always", "off"] = Field(
        default="auto",
        description="also run overlapping tiles: when a pass is saturated (6 people), on every frame, or never",
    )
    max_tiles: int = Field(default=4, ge=1, le=16, description="tiles per frame when tiling (4: 2x2)")
    tile_max_load: float = Field(
        default=0.5,
        gt=0,
        description="auto: skip the tiles while the frames the cameras offer would keep single passes busier "
        "than this share of the time: crowd tiles only use headroom",
    )
    tile_max_lag: float = Field(
        default=0.25,
        ge=0,
        description="auto: skip the tiles when the frames waiting for detection would wait longer than this "
        "(seconds) for them, so a crowd on one camera never delays the others' detection",
    )

    @field_validator("input_size")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"must be a multiple of 32 (the model's stride), got {value}")
        return value


class MoveNetDetector(Detector):
    """People and their poses. One dedicated worker thread per detector runs the interpreter."""

    kind = "movenet"
    Config = MoveNetConfig
    labels = ("person",)

    _executor: ThreadPoolExecutor | None = None
    _engine: MoveNetEngine | None = None
    tiles_skipped = 0  # frames whose crowd tiles were skipped because detection was behind
    _pass_seconds = 0.02  # running estimate of one model pass, for deciding about tiles

    @property
    def settings(self) -> MoveNetConfig:
        assert isinstance(self.config, MoveNetConfig)
        return self.config

    def model_file(self) -> Path:
        """The model this detector loads; raises ConfigError (with the fix) when it is missing."""
        if self.settings.model is not None:
            path = self.context.resolve(self.settings.model)
            if not path.is_file():
                raise ConfigError(
                    f"detector {self.name!r}: MoveNet model file {path} not found (option `model`); "
                    f"remove the option to use the installed model (`{INSTALL_COMMAND}`)"
                )
            return path
        path = models.expected_path("movenet")
        if models.model_path("movenet") is None:
            state = "damaged (wrong size); " if path.exists() else ""
            raise ConfigError(f"MoveNet model not installed: run `{INSTALL_COMMAND}` ({state}expected at {path})")
        return path

    def preflight(self) -> list[tuple[str, str]]:
        try:
            self.model_file()
        except ConfigError as exc:
            return [("model", str(exc))]
        return []

    async def start(self) -> None:
        await self.stop()
        path = self.model_file()
        cfg = self.settings
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"movenet-{self.name}")
        try:
            loop = asyncio.get_running_loop()
            self._engine = await loop.run_in_executor(executor, _load, path, cfg.input_size, cfg.threads)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        self._executor = executor
        self.input_size = (cfg.input_size, cfg.input_size)  # the long side; the short one follows the frame
        self.log.info("MoveNet %s loaded (input %d, %d threads)", path, cfg.input_size, cfg.threads)

    async def stop(self) -> None:
        executor, self._executor, self._engine = self._executor, None, None
        if executor is not None:
            # waits for a pass still running (tens of ms) so no thread outlives the detector
            await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        engine, executor = self._engine, self._executor
        if engine is None or executor is None:
            raise RuntimeError(f"detector {self.name!r} is not started")
        return await asyncio.get_running_loop().run_in_executor(executor, self._detect_all, engine, list(frames))

    def _detect_all(self, engine: MoveNetEngine, frames: list[Frame]) -> list[list[Detection]]:
        """Runs in the worker thread."""
        cfg = self.settings
        out: list[list[Detection]] = []
        started = time.monotonic()
        for index, frame in enumerate(frames):
            tile = cfg.tile
            if tile == "auto":
                # How long the frames still waiting (behind this batch, and in it) will have waited:
                # the crowd's extra passes (4 more) would add to every one of them. And whether the
                # cameras' steady demand leaves room for extra passes at all.
                behind = self.waiting + len(frames) - index - 1
                projected = self.lag + (time.monotonic() - started) + behind * self._pass_seconds
                loaded = self.demand * self._pass_seconds > cfg.tile_max_load
                if loaded or (behind and projected > cfg.tile_max_lag):
                    tile = "off"
                    self.tiles_skipped += 1
            image = _bgr(frame.image)
            if image is None:
                out.append([])  # metadata-only frame: nothing to look at
                continue
            begun = time.monotonic()
            people = engine.detect(image, cfg.confidence, tile=tile, max_tiles=cfg.max_tiles)
            if tile == "off" or len(people) < 6:  # one pass: keep a running estimate of its cost
                self._pass_seconds += 0.2 * ((time.monotonic() - begun) - self._pass_seconds)
            out.append([_to_detection(p, cfg.keypoint_confidence) for p in people])
        return out


def _load(path: Path, input_size: int, threads: int) -> MoveNetEngine:
    from ._movenet_pose import MoveNetEngine

    engine = MoveNetEngine(path, input_size, threads)
    engine.warm_up()
    return engine


def _bgr(image: Any) -> Any:
    """``image`` as H x W x 3 uint8 BGR, or None when the frame carries none."""
    if image is None:
        return None
    import cv2
    import numpy as np

    array = np.asarray(image)
    if array.dtype != np.uint8:
        raise ValueError(f"MoveNet needs uint8 images, got {array.dtype}")
    if array.ndim == 2:
        return cv2.cvtColor(array, cv2.COLOR_GRAY2BGR)
    if array.ndim == 3 and array.shape[2] == 4:
        return cv2.cvtColor(array, cv2.COLOR_BGRA2BGR)
    if array.ndim != 3 or array.shape[2] != 3:
        raise ValueError(f"MoveNet needs H x W x 3 BGR images, got shape {array.shape}")
    return array


def _to_detection(person: Person, keypoint_confidence: float) -> Detection:
    x1, y1, x2, y2 = (float(v) for v in person.box)
    # One validation of plain data (pydantic's core does it in one pass): half the cost of 19 objects.
    keypoints = [
        {"x": x, "y": y, "score": s if s >= keypoint_confidence else 0.0} for x, y, s in person.keypoints.tolist()
    ]
    return Detection.model_validate({
        "box": {"x1": x1, "y1": y1, "x2": x2, "y2": y2}, "label": "person", "score": float(person.score),
        "keypoints": keypoints,
    })  # fmt: skip


@hookimpl
def campusguard_register_detectors(registry: Registry[Detector]) -> None:
    registry.add(MoveNetDetector)
