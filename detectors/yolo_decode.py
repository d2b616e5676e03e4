"""YOLO pre- and post-processing: letterbox, tensor layout, decoding, NMS and undoing the letterbox.

Pure numpy and OpenCV, shared by the ONNX Runtime and TensorRT detectors and the benchmarks. It
imports nothing from campusguard, so a standalone script can load this file by path.

Layouts (Ultralytics exports): YOLOv8/YOLO11 give ``[batch, 4 + classes, boxes]`` with columns
cx, cy, w, h in letterboxed pixels then per-class scores (already sigmoided, no objectness);
YOLOv5 gives ``[batch, boxes, 5 + classes]`` with an objectness column before the class scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

Layout = Literal["v8", "v5"]
FloatArray = npt.NDArray[np.floating]
IntArray = npt.NDArray[np.intp]

PAD_VALUE = 114  # Ultralytics pads with this grey: the models were trained on it
# A float32 scalar keeps uint8 x scale in float32; Python's 1 / 255 would compute in float64 (4x slower).
PIXEL_SCALE = np.float32(1 / 255)
MAX_CANDIDATES = 30_000  # bounds NMS time when a bad threshold lets everything through
MAX_DETECTIONS = 300  # per image; far above any crowd a school camera sees


@dataclass(frozen=True)
class Letterbox:
    """How one image was fitted into the model input, to map boxes back to its pixels."""

    scale_x: float  # resized width / original width
    scale_y: float
    left: int  # padding added on the left, in input pixels
    top: int
    width: int  # original image size
    height: int

    def undo(self, boxes: FloatArray) -> npt.NDArray[np.float64]:
        """``boxes`` (x1, y1, x2, y2 in input pixels) in the original image, clipped to it."""
        out = np.empty(boxes.shape, dtype=np.float64)
        out[:, 0::2] = (boxes[:, 0::2] - self.left) / self.scale_x
        out[:, 1::2] = (boxes[:, 1::2] - self.top) / self.scale_y
        np.clip(out[:, 0::2], 0.0, self.width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0.0, self.height, out=out[:, 1::2])
        return out


def fit(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """``image`` resized to fit ``size`` (width, height) keeping its aspect, and where it goes in it."""
    height, width = image.shape[:2]
    in_w, in_h = size
    ratio = min(in_w / width, in_h / height)
    new_w, new_h = round(width * ratio), round(height * ratio)
    if (new_w, new_h) != (width, height):
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    # Ultralytics' rounding: an odd pixel of padding goes to the bottom and right
    left, top = round((in_w - new_w) / 2 - 0.1), round((in_h - new_h) / 2 - 0.1)
    return image, Letterbox(new_w / width, new_h / height, left, top, width, height)


def letterbox(image: np.ndarray, size: tuple[int, int], pad: int = PAD_VALUE) -> tuple[np.ndarray, Letterbox]:
    """Fit ``image`` (H x W x 3) into ``size`` (width, height), keeping its aspect, centred on grey."""
    resized, box = fit(image, size)
    bottom, right = size[1] - resized.shape[0] - box.top, size[0] - resized.shape[1] - box.left
    if box.top or bottom or box.left or right:
        resized = cv2.copyMakeBorder(resized, box.top, bottom, box.left, right, cv2.BORDER_CONSTANT, value=(pad,) * 3)
    return resized, box


def to_tensor(images: Sequence[np.ndarray], dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """BGR uint8 images of the input size as one NCHW RGB tensor in [0, 1]."""
    blob = cv2.dnn.blobFromImages(list(images), scalefactor=1 / 255, swapRB=True)  # float32, one C++ pass
    return blob if np.dtype(dtype) == np.float32 else blob.astype(dtype)


class InputBuffer:
    """A reusable NCHW RGB input tensor that frames are letterboxed straight into.

    Same values as ``to_tensor(letterbox(...))`` but about twice as fast: only the picture's pixels
    are converted (the grey padding stays from the last call) and nothing is allocated per frame.
    Not thread-safe, and the tensor is overwritten by the next ``put``: run the model in between.
    """

    def __init__(self, batch: int, size: tuple[int, int], dtype: npt.DTypeLike = np.float32) -> None:
        self.size = size
        self.tensor = np.full((batch, 3, size[1], size[0]), PAD_VALUE / 255, dtype=dtype)
        self._placed: list[tuple[int, int, int, int] | None] = [None] * batch  # picture area per slot

    def put(self, index: int, image: np.ndarray) -> Letterbox:
        """Letterbox BGR ``image`` into slot ``index``; return how, to map boxes back."""
        resized, box = fit(image, self.size)
        h, w = resized.shape[:2]
        slot = self.tensor[index]
        area = (box.top, box.left, h, w)
        if self._placed[index] != area:  # the picture moved: repaint the padding around it
            slot.fill(PAD_VALUE / 255)
            self._placed[index] = area
        planes = cv2.split(resized)
        for channel in range(3):  # BGR planes into RGB channels, scaled to [0, 1]
            np.multiply(
                planes[2 - channel],
                PIXEL_SCALE,
                out=slot[channel, box.top : box.top + h, box.left : box.left + w],
                casting="unsafe",
            )
        return box

    def blank(self, index: int) -> None:
        """Fill slot ``index`` with grey (unused places in a fixed-size batch)."""
        self.tensor[index].fill(PAD_VALUE / 255)
        self._placed[index] = None


def resolve_layout(
    shape: Sequence[int], layout: Literal["auto", "v8", "v5"], classes: int | None
) -> tuple[Layout, int]:
    """The layout and class count of an output of ``shape``; ``ValueError`` when it is not YOLO's.

    ``classes`` (the number of class names known, if any) settles ``auto``; otherwise the boxes
    dimension is the larger one (8400 at 640 px against 84 columns).
    """
    expected = "expected [batch, 4+classes, boxes] (YOLOv8/YOLO11) or [batch, boxes, 5+classes] (YOLOv5)"
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"output shape {list(shape)} is not a YOLO detection output: {expected}")
    rows, cols = shape[1], shape[2]
    if layout == "auto":
        v8 = classes is not None and rows == 4 + classes
        v5 = classes is not None and cols == 5 + classes
        layout = "v8" if v8 and not v5 else "v5" if v5 and not v8 else "v8" if rows < cols else "v5"
    count = rows - 4 if layout == "v8" else cols - 5
    if count < 1:
        raise ValueError(f"output shape {list(shape)} leaves no class columns for layout {layout}: {expected}")
    return layout, count


@dataclass(frozen=True)
class Candidates:
    """Boxes above their class threshold: x1, y1, x2, y2 in input pixels, score and class index."""

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    classes: IntArray


def _candidates(xywh: np.ndarray, scores: np.ndarray, classes: IntArray) -> Candidates:
    boxes = np.empty((len(scores), 4), dtype=np.float32)
    half_w, half_h = xywh[:, 2] / 2, xywh[:, 3] / 2
    boxes[:, 0], boxes[:, 1] = xywh[:, 0] - half_w, xywh[:, 1] - half_h
    boxes[:, 2], boxes[:, 3] = xywh[:, 0] + half_w, xywh[:, 1] + half_h
    return Candidates(boxes, scores.astype(np.float32, copy=False), classes)


def decode_v8(output: np.ndarray, thresholds: FloatArray) -> Candidates:
    """One image's ``[4 + classes, boxes]`` output; each box keeps its best class if above its threshold."""
    scores = output[4:]
    # Cheap first pass over all boxes: nearly all score far below every threshold.
    keep = np.flatnonzero(scores.max(axis=0) > thresholds.min())
    sub = scores[:, keep]
    best = sub.argmax(axis=0)
    conf = sub[best, np.arange(len(keep))]
    ok = conf > thresholds[best]
    keep, best, conf = keep[ok], best[ok], conf[ok]
    return _candidates(output[:4, keep].T, conf, best)


def decode_v5(output: np.ndarray, thresholds: FloatArray) -> Candidates:
    """One image's ``[boxes, 5 + classes]`` output; score = objectness x class score."""
    objectness = output[:, 4]
    keep = np.flatnonzero(objectness > thresholds.min())  # a class score never exceeds its objectness
    sub = output[keep, 5:] * objectness[keep, None]
    best = sub.argmax(axis=1)
    conf = sub[np.arange(len(keep)), best]
    ok = conf > thresholds[best]
    keep, best, conf = keep[ok], best[ok], conf[ok]
    return _candidates(output[keep, :4], conf, best)


def nms(candidates: Candidates, groups: IntArray, iou: float, max_detections: int = MAX_DETECTIONS) -> IntArray:
    """Indices of the boxes kept, best first. Boxes only suppress boxes of the same group."""
    count = len(candidates.scores)
    if count == 0:
        return np.empty(0, dtype=np.intp)
    order = np.arange(count)
    if count > MAX_CANDIDATES:
        order = np.argpartition(-candidates.scores, MAX_CANDIDATES)[:MAX_CANDIDATES]
    boxes = candidates.boxes[order].astype(np.float64)
    boxes[:, 2:] -= boxes[:, :2]  # OpenCV wants x, y, w, h
    scores, ids = candidates.scores[order], groups[order].astype(np.int32)
    # OpenCV's stubs ask for sequences; arrays work and spare a copy into Python lists.
    kept = cv2.dnn.NMSBoxesBatched(boxes, scores, ids, 0.0, iou, top_k=max_detections)  # type: ignore[arg-type]
    return order[np.asarray(kept, dtype=np.intp).reshape(-1)]


@dataclass(frozen=True)
class DecodeSpec:
    """Everything post-processing needs besides the output itself."""

    layout: Layout
    thresholds: FloatArray  # per model class; > 1 drops the class
    groups: IntArray  # per model class: index of its output label (NMS runs per output label)
    iou: float
    max_detections: int = MAX_DETECTIONS


def postprocess(
    output: np.ndarray, spec: DecodeSpec, box: Letterbox
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float32], IntArray]:
    """One image's raw output to (boxes in its pixels, scores, output label indices), best first."""
    decode = decode_v8 if spec.layout == "v8" else decode_v5
    found = decode(np.asarray(output, dtype=np.float32), spec.thresholds)  # FP16 models: decode in FP32
    groups = spec.groups[found.classes]
    kept = nms(found, groups, spec.iou, spec.max_detections)
    boxes = box.undo(found.boxes[kept])
    # A box wholly inside the padding collapses to nothing once clipped: drop it.
    real = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    return boxes[real], found.scores[kept][real], groups[kept][real]
