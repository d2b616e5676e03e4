"""MoveNet MultiPose Lightning on LiteRT: one pass, decoding to frame pixels, tiling for crowds.

Imported by :mod:`campusguard.detectors.movenet` inside ``start()`` only (numpy, OpenCV and LiteRT
are slow to import). Everything here runs in the detector's worker thread; the interpreter is not
thread-safe, so one engine is used by one thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from campusguard.sdk import ConfigError

MAX_PEOPLE = 6  # the model's fixed output: at most 6 people per pass
NUM_KEYPOINTS = 17  # COCO order
OUTPUT_SHAPE = (1, MAX_PEOPLE, NUM_KEYPOINTS * 3 + 5)  # 17 x (y, x, score) + ymin, xmin, ymax, xmax, score
TILE_OVERLAP = 0.15  # of a tile's width/height: a person cut by one tile is whole in its neighbour
NMS_IOU = 0.5
FRAGMENT_IOS = 0.6  # a box cut by a tile edge that lies this much inside a kept box is the same person
_EDGE_PX = 2.0
SATURATED = 0.5  # of the person threshold: a 6th candidate this strong means the model ran out of slots

Image = npt.NDArray[np.uint8]
TileMode = Literal["auto", "always", "off"]
Floats = npt.NDArray[np.float32]


@dataclass
class Person:
    """One person in frame pixels: box (x1, y1, x2, y2), keypoints (17 x (x, y, score))."""

    box: Floats
    score: float
    keypoints: Floats
    cut: bool = False  # the box touches a tile edge inside the frame: maybe only part of the person


def _ceil32(value: float) -> int:
    return max(32, math.ceil(value / 32) * 32)


class MoveNetEngine:
    """A loaded interpreter. ``input_size`` is the long side of the input; the short side is the
    image's, scaled alike and padded up to a multiple of 32 (the model takes any such shape), so a
    4:3 frame costs 256 x 192 instead of a square 256 x 256 with a quarter of it padding."""

    def __init__(self, model_path: Path, input_size: int, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

        self.path = model_path
        self.input_size = input_size
        try:
            self._interp: Any = Interpreter(model_path=str(model_path), num_threads=threads)
        except (ValueError, RuntimeError) as exc:
            raise ConfigError(
                f"MoveNet model {model_path} could not be loaded ({exc}): it is not a valid .tflite file; "
                "reinstall it with `campusguard models install movenet` or fix the `model` option"
            ) from exc
        inp, out = self._interp.get_input_details(), self._interp.get_output_details()
        signature = tuple(int(v) for v in inp[0]["shape_signature"]) if len(inp) == 1 else ()
        shape = tuple(int(v) for v in out[0]["shape"]) if len(out) == 1 else ()
        if len(signature) != 4 or signature[0] != 1 or signature[3] != 3 or shape != OUTPUT_SHAPE:
            raise ConfigError(
                f"{model_path} is not MoveNet MultiPose: input {list(signature)}, output {list(shape)}; "
                f"expected input [1, H, W, 3] and output {list(OUTPUT_SHAPE)}"
            )
        if inp[0]["dtype"] is not np.uint8:
            raise ConfigError(f"{model_path}: input type {inp[0]['dtype'].__name__}, expected uint8 (MultiPose)")
        self._input = int(inp[0]["index"])
        self._output = int(out[0]["index"])
        # A model exported with a fixed input size only takes that size.
        self._fixed = None if signature[1] < 0 or signature[2] < 0 else (signature[1], signature[2])
        self._shape: tuple[int, int] | None = None

    def warm_up(self, aspect: float = 4 / 3) -> None:
        """Allocate for the commonest camera shape and run once (the first invoke packs weights)."""
        self.run(np.zeros((round(self.input_size / aspect), self.input_size, 3), np.uint8), 0.0)

    # -- one pass -------------------------------------------------------------------------------

    def _input_shape(self, h: int, w: int) -> tuple[int, int, float, float]:
        """(H, W) of the input tensor and the image's size once scaled into it."""
        if self._fixed is not None:
            scale = min(self._fixed[0] / h, self._fixed[1] / w)
            return self._fixed[0], self._fixed[1], h * scale, w * scale
        scale = self.input_size / max(h, w)
        # One image pixel over a multiple of 32 (a crop rounded to whole pixels) is squeezed in, not
        # given 31 more rows: the shape, and so the interpreter's allocation, stays the camera's.
        spare = max(1.0, scale)
        return _ceil32(h * scale - spare), _ceil32(w * scale - spare), h * scale, w * scale

    def _resize_input(self, shape: tuple[int, int]) -> None:
        if shape != self._shape:  # ~5 ms; a camera keeps its shape, and 2x2 tiles share it
            if self._fixed is None:
                self._interp.resize_tensor_input(self._input, [1, *shape, 3], strict=True)
            self._interp.allocate_tensors()
            self._shape = shape

    def run(self, image: Image, confidence: float) -> list[Person]:
        """One pass over ``image`` (BGR): people scoring at least ``confidence``, in its pixels."""
        h, w = image.shape[:2]
        in_h, in_w, sh, sw = self._input_shape(h, w)
        rh, rw = min(in_h, max(1, round(sh))), min(in_w, max(1, round(sw)))
        shrink = rw < w
        resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        tensor = np.zeros((1, in_h, in_w, 3), np.uint8)  # padded bottom/right: no offset to undo
        tensor[0, :rh, :rw] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        self._resize_input((in_h, in_w))
        self._interp.set_tensor(self._input, tensor)
        self._interp.invoke()
        raw = np.asarray(self._interp.get_tensor(self._output), np.float32)[0]
        # normalised to the padded tensor -> image pixels: x * in_w / (rw / w)
        fx, fy = in_w * w / rw, in_h * h / rh
        people = []
        for row in raw:
            score = float(row[55])
            if score < confidence:
                continue
            ymin, xmin, ymax, xmax = row[51:55]
            box = np.array([xmin * fx, ymin * fy, xmax * fx, ymax * fy], np.float32)
            box = np.clip(box, 0, np.array([w, h, w, h], np.float32))
            if box[2] <= box[0] or box[3] <= box[1]:
                continue
            yxs = row[:51].reshape(NUM_KEYPOINTS, 3)
            keypoints = np.stack(
                [np.clip(yxs[:, 1] * fx, 0, w), np.clip(yxs[:, 0] * fy, 0, h), np.clip(yxs[:, 2], 0, 1)], axis=1
            ).astype(np.float32)
            people.append(Person(box, min(max(score, 0.0), 1.0), keypoints))
        return people

    # -- crowds -----------------------------------------------------------------------------------

    def detect(self, image: Image, confidence: float, *, tile: TileMode, max_tiles: int) -> list[Person]:
        """People in ``image``; ``tile`` is "auto", "always" or "off".

        "auto" tiles when the full pass is saturated: all 6 output slots hold a candidate scoring at
        least half of ``confidence``. Counting only those above ``confidence`` misses crowds: on
        2x2 mosaics of the sample footage (15-22 people) the 6th slot scored 0.13-0.21 while only
        2-5 people passed 0.2. Tiles are extra passes, merged with the full one; one level only.
        """
        candidates = self.run(image, 0.0)
        people = [p for p in candidates if p.score >= confidence]
        saturated = len(candidates) == MAX_PEOPLE and min(p.score for p in candidates) >= SATURATED * confidence
        if tile == "off" or (tile == "auto" and not saturated):
            return people
        h, w = image.shape[:2]
        grid = tile_grid(w, h, max_tiles)
        if grid == (1, 1):
            return people
        for x0, y0, x1, y1 in tiles(w, h, *grid):
            for p in self.run(image[y0:y1, x0:x1], confidence):
                p.box[[0, 2]] += x0
                p.box[[1, 3]] += y0
                p.keypoints[:, 0] += x0
                p.keypoints[:, 1] += y0
                p.cut = bool(
                    (x0 > 0 and p.box[0] <= x0 + _EDGE_PX)
                    or (x1 < w and p.box[2] >= x1 - _EDGE_PX)
                    or (y0 > 0 and p.box[1] <= y0 + _EDGE_PX)
                    or (y1 < h and p.box[3] >= y1 - _EDGE_PX)
                )
                people.append(p)
        return merge(people)


def tile_grid(w: int, h: int, max_tiles: int) -> tuple[int, int]:
    """(columns, rows): n x n with the largest n*n <= max_tiles (tiles keep the frame's aspect, so
    they reuse its input shape), else 2 along the long side; (1, 1) when tiling is impossible."""
    n = math.isqrt(max_tiles)
    if n >= 2:
        return n, n
    if max_tiles >= 2:
        return (2, 1) if w >= h else (1, 2)
    return 1, 1


def tiles(w: int, h: int, cols: int, rows: int) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x0, y0, x1, y1) covering a w x h frame."""

    def spans(length: int, n: int) -> list[tuple[int, int]]:
        size = length / (n - (n - 1) * TILE_OVERLAP)
        step = size * (1 - TILE_OVERLAP)
        return [(round(i * step), min(length, round(i * step + size))) for i in range(n)]

    return [(x0, y0, x1, y1) for y0, y1 in spans(h, rows) for x0, x1 in spans(w, cols)]


def _overlaps(a: Floats, b: Floats) -> tuple[float, float]:
    """(IoU, intersection over the smaller box)."""
    iw = max(0.0, float(min(a[2], b[2]) - max(a[0], b[0])))
    ih = max(0.0, float(min(a[3], b[3]) - max(a[1], b[1])))
    inter = iw * ih
    area_a = float((a[2] - a[0]) * (a[3] - a[1]))
    area_b = float((b[2] - b[0]) * (b[3] - b[1]))
    union = area_a + area_b - inter
    return (inter / union if union > 0 else 0.0), (inter / min(area_a, area_b) if min(area_a, area_b) > 0 else 0.0)


def merge(people: list[Person]) -> list[Person]:
    """Non-maximum suppression over full-frame and tile passes; the kept box keeps its keypoints.

    Whole boxes go first by score; a box cut by a tile edge is also dropped when it lies mostly
    inside a kept box (it is a fragment of that person, seen whole elsewhere)."""
    kept: list[Person] = []
    for p in sorted(people, key=lambda p: (p.cut, -p.score)):
        duplicate = False
        for k in kept:
            iou, ios = _overlaps(p.box, k.box)
            if iou > NMS_IOU or (p.cut and ios > FRAGMENT_IOS):
                duplicate = True
                break
        if not duplicate:
            kept.append(p)
    return kept
