"""Draw what the pipeline saw (zones, boxes, skeletons, track ids) and write it as an MP4."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from campusguard.sdk import CameraSourceConfig

from .processor import FrameResult

# COCO keypoint pairs drawn as bones.
SKELETON = ((5, 7), (7, 9), (6, 8), (8, 10), (5, 6), (5, 11), (6, 12), (11, 12), (11, 13), (13, 15), (12, 14), (14, 16))
_ZONE, _BOX, _TRACK, _BONE, _LOOK = (0, 200, 255), (0, 255, 0), (255, 255, 0), (255, 0, 255), (255, 128, 0)


class Annotator:
    def __init__(self, path: Path, camera: CameraSourceConfig, fps: int = 10) -> None:
        self.path, self.camera, self.fps = path, camera, fps
        self._container: Any = None
        self._stream: Any = None

    def _open(self, width: int, height: int) -> None:
        import av

        self._container = av.open(str(self.path), "w", options={"movflags": "+faststart"})
        self._stream = self._container.add_stream("libx264", rate=self.fps)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"

    def draw(self, result: FrameResult) -> np.ndarray:
        frame = result.frame
        image = np.ascontiguousarray(frame.image.copy())
        w, h = frame.width, frame.height
        for name, zone in self.camera.zones.items():
            polygon = np.array([[x * w, y * h] for x, y in zone.polygon], dtype=np.int32)
            cv2.polylines(image, [polygon], True, _ZONE, 2)
            cv2.putText(image, name, (int(polygon[0][0]), int(polygon[0][1])), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _ZONE, 1)
        for area in result.looked:  # a second look, where a person vanished
            cv2.rectangle(image, (int(area.x1), int(area.y1)), (int(area.x2), int(area.y2)), _LOOK, 1)
            cv2.putText(image, "look", (int(area.x1) + 2, int(area.y2) - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, _LOOK, 1)
        for detection in result.detections:
            b = detection.box
            cv2.rectangle(image, (int(b.x1), int(b.y1)), (int(b.x2), int(b.y2)), _BOX, 1)
            if detection.keypoints:
                points = [(int(k.x), int(k.y), k.score) for k in detection.keypoints]
                for a, c in SKELETON:
                    if a < len(points) and c < len(points) and min(points[a][2], points[c][2]) > 0.2:
                        cv2.line(image, points[a][:2], points[c][:2], _BONE, 2)
        for track in result.tracks:
            b = track.box
            label = f"#{track.track_id}" + (" ARMED" if "armed" in track.flags else "")
            cv2.putText(image, label, (int(b.x1), max(12, int(b.y1) - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _TRACK, 1)
        for observation in result.observations:
            cv2.putText(image, observation.kind.upper(), (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 255), 2)
        return image

    def write(self, result: FrameResult) -> None:
        import av

        image = self.draw(result)
        if self._container is None:
            self._open(image.shape[1] - image.shape[1] % 2, image.shape[0] - image.shape[0] % 2)
        image = image[: self._stream.height, : self._stream.width]
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            self._container.mux(packet)

    def close(self) -> None:
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
