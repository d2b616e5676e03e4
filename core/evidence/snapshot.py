"""Evidence snapshots: the frame an incident came from, as JPEG, with its boxes drawn (runs in a thread)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from campusguard.sdk import Box, CameraSourceConfig, Detection, Frame, Observation

from .files import WrittenFile, write_bytes

JPEG_QUALITY = 90


@dataclass(frozen=True)
class SnapshotRequest:
    """What of an incident the drawing needs (a copy: the incident may change meanwhile)."""

    kind: str
    confidence: float
    boxes: tuple[Box, ...] = ()
    scores: tuple[float, ...] = field(default=())


def render(frame: Frame, request: SnapshotRequest, camera: CameraSourceConfig) -> bytes:
    """The frame with the camera's zones, the incident's boxes and its kind drawn, as JPEG bytes."""
    import cv2

    from ..pipeline.annotate import Annotator
    from ..pipeline.processor import FrameResult

    if frame.image is None:
        raise ValueError(f"frame {frame.id} of camera {frame.camera_id!r} carries no image")
    detections = [
        Detection(
            box=box,
            label=request.kind,
            score=min(1.0, max(0.0, request.scores[i] if i < len(request.scores) else request.confidence)),
        )
        for i, box in enumerate(request.boxes)
    ]
    observation = Observation(kind=request.kind, camera_id=frame.camera_id, confidence=request.confidence)
    result = FrameResult(frame, detections=detections, observations=[observation])
    image = Annotator(Path(os.devnull), camera).draw(result)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(encoded.tobytes())


def write_snapshot(frame: Frame, request: SnapshotRequest, camera: CameraSourceConfig, path: Path) -> WrittenFile:
    return write_bytes(path, render(frame, request, camera))
