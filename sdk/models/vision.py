"""What the video pipeline passes along: frames, detections, tracks and observations."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .base import Message, StageStamp


class Box(BaseModel):
    """An axis-aligned box in pixels of the frame it was found in: (x1, y1) top-left."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x1: float
    y1: float
    x2: float
    y2: float

    @field_validator("x2")
    @classmethod
    def _x_ordered(cls, x2: float, info: Any) -> float:
        if "x1" in info.data and x2 < info.data["x1"]:
            raise ValueError("x2 must be >= x1")
        return x2

    @field_validator("y2")
    @classmethod
    def _y_ordered(cls, y2: float, info: Any) -> float:
        if "y1" in info.data and y2 < info.data["y1"]:
            raise ValueError("y2 must be >= y1")
        return y2

    @property
    def width(self) -> float:
        return self.x2 - self.x1

    @property
    def height(self) -> float:
        return self.y2 - self.y1

    @property
    def center(self) -> tuple[float, float]:
        return ((self.x1 + self.x2) / 2, (self.y1 + self.y2) / 2)


class Keypoint(BaseModel):
    """One body keypoint (COCO order for pose models). Never a face descriptor."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    x: float
    y: float
    score: float = Field(ge=0.0, le=1.0)


class Frame(Message):
    """One decoded picture from a camera.

    ``image`` (a numpy array, H x W x 3 BGR) travels in-process only: it is left out of JSON, which
    carries the metadata. Both capture clocks are kept so latency can be measured per stage.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    camera_id: str
    sequence: int = Field(ge=0)
    captured: StageStamp = Field(default_factory=StageStamp.now)
    width: int = Field(ge=0)
    height: int = Field(ge=0)
    image: Any = Field(default=None, exclude=True, repr=False)
    motion: bool = Field(default=True, description="the motion gate saw movement (always true when it is off)")
    regions: tuple[Box, ...] = Field(default=(), description="where it moved, in this frame's pixels; () is all")


class Detection(BaseModel):
    """One object a detector found. ``keypoints`` is set by pose models."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    box: Box
    label: str
    score: float = Field(ge=0.0, le=1.0)
    keypoints: tuple[Keypoint, ...] | None = None


class TrackPoint(BaseModel):
    """Where a track was at one frame: its box and, for pose models, its keypoints."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    at: float = Field(description="monotonic capture time of the frame, seconds")
    box: Box
    keypoints: tuple[Keypoint, ...] | None = None


class Track(BaseModel):
    """An object followed over time on one camera.

    ``flags`` (e.g. ``armed``) persist for the life of the track once set. ``history`` holds the
    latest points (newest last, bounded by the tracker, 64 by default) for pose and motion analyzers.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    track_id: int
    camera_id: str
    label: str
    box: Box
    score: float = Field(ge=0.0, le=1.0)
    first_seen: StageStamp
    last_seen: StageStamp
    flags: set[str] = Field(default_factory=set)
    keypoints: tuple[Keypoint, ...] | None = None
    history: list[TrackPoint] = Field(default_factory=list)


class Evidence(BaseModel):
    """What backs an observation or incident: a frame, its boxes, the tracks and scores."""

    model_config = ConfigDict(extra="forbid")

    frame_id: str | None = None
    camera_id: str | None = None
    boxes: list[Box] = Field(default_factory=list)
    track_ids: list[int] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    snapshot_path: str | None = None
    snapshot_sha256: str | None = None
    clip_path: str | None = None
    clip_sha256: str | None = None


def _files_of(evidence: Evidence) -> dict[str, str | None]:
    return {k: getattr(evidence, k) for k in ("snapshot_path", "snapshot_sha256", "clip_path", "clip_sha256")}


def keep_files(older: Evidence, newer: Evidence) -> Evidence:
    """``newer`` (a later sighting's boxes and scores) keeping ``older``'s snapshot and clip where it has none."""
    kept = {k: v for k, v in _files_of(older).items() if v is not None and getattr(newer, k) is None}
    return newer.model_copy(update=kept) if kept else newer


class Observation(Message):
    """Something an analyzer saw; the rules engine turns observations into incidents."""

    kind: str
    camera_id: str
    zone: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    track_ids: list[int] = Field(default_factory=list)
    evidence: Evidence = Field(default_factory=Evidence)
    captured: StageStamp | None = None
    detected: StageStamp = Field(default_factory=StageStamp.now)
    attributes: dict[str, Any] = Field(default_factory=dict)
