"""Detect on the part of the frame that matters: where it moved, and where people already are.

With ``[cameras.X.motion] crop = true`` (the default) a moving frame whose motion regions and
current tracks (padded by ``crop_margin``) cover less than ``crop_max_area`` of it goes to the
detectors cropped to that area, grown to the frame's aspect ratio: fewer pixels to scale down, so a
person far away (or lying on the ground) is larger in the model's input. The tracks are part of the
area so that people standing still are still seen, and detections are moved back to the whole
frame's pixels before anything else sees them.
"""

from __future__ import annotations

from collections.abc import Sequence

from campusguard.sdk import Box, Detection, Frame, Keypoint, MotionSettings, Track

MIN_SIDE = 0.15  # the smallest crop, as a fraction of the frame's sides


def crop_box(frame: Frame, tracks: Sequence[Track], settings: MotionSettings) -> Box | None:
    """The area to detect on, or None for the whole frame."""
    if not settings.crop or not frame.regions or frame.image is None or not frame.width or not frame.height:
        return None
    boxes = [*frame.regions, *(t.box for t in tracks)]
    margin = settings.crop_margin * max(frame.width, frame.height)
    x1 = max(0.0, min(b.x1 for b in boxes) - margin)
    y1 = max(0.0, min(b.y1 for b in boxes) - margin)
    x2 = min(float(frame.width), max(b.x2 for b in boxes) + margin)
    y2 = min(float(frame.height), max(b.y2 for b in boxes) + margin)
    box = frame_shaped(x1, y1, x2, y2, frame.width, frame.height)
    if box.width * box.height >= settings.crop_max_area * frame.width * frame.height:
        return None
    return box


def frame_shaped(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> Box:
    """The area grown to the frame's aspect ratio around its centre, inside the frame, in whole pixels.

    Every crop of a camera then reaches the model at one input shape, as its whole frames do: a
    model with a flexible input (MoveNet) re-allocates for each new shape, about 5 ms a time.
    """
    aspect = width / height
    w, h = x2 - x1, y2 - y1
    w, h = (h * aspect, h) if w < h * aspect else (w, w / aspect)
    # Never a sliver: a tiny area (a hand that moved) would be blown up past use, an empty one is no picture.
    w, h = max(w, MIN_SIDE * width), max(h, MIN_SIDE * height)
    # Round one side, derive the other from it: off the frame's shape by half a pixel at most.
    if aspect >= 1:
        h = min(height, round(h))
        w = min(width, round(h * aspect))
    else:
        w = min(width, round(w))
        h = min(height, round(w / aspect))
    left = min(max(0, round((x1 + x2 - w) / 2)), width - w)
    top = min(max(0, round((y1 + y2 - h) / 2)), height - h)
    return Box(x1=left, y1=top, x2=left + w, y2=top + h)


def cropped(frame: Frame, box: Box) -> Frame:
    """The same frame (same id and stamps), its picture cut to ``box``."""
    x1, y1, x2, y2 = int(box.x1), int(box.y1), int(box.x2), int(box.y2)
    return frame.model_copy(update={"image": frame.image[y1:y2, x1:x2], "width": x2 - x1, "height": y2 - y1,
                                    "regions": ()})  # fmt: skip


def uncropped(detections: Sequence[Detection], box: Box) -> list[Detection]:
    """Detections found in the crop ``box``, in the whole frame's pixels."""
    dx, dy = box.x1, box.y1

    def shift(d: Detection) -> Detection:
        moved = Box(x1=d.box.x1 + dx, y1=d.box.y1 + dy, x2=d.box.x2 + dx, y2=d.box.y2 + dy)
        keypoints = tuple(Keypoint(x=k.x + dx, y=k.y + dy, score=k.score) for k in d.keypoints) if d.keypoints else None
        return d.model_copy(update={"box": moved, "keypoints": keypoints})

    return [shift(d) for d in detections]
