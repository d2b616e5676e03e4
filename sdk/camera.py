"""What every camera source shares: the pipeline options of a camera and its live statistics.

A camera source's ``Config`` subclasses :class:`CameraSourceConfig`, so every camera in
``plugins.toml`` takes the same pipeline keys (frame rate cap, stall timeout, motion, tamper)
beside its own (``url``, ``path``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .geometry import Line, Zone


class MotionSettings(BaseModel):
    """``[cameras.<name>.motion]``: the cheap gate in front of detection.

    Frames are shrunk to ``width`` pixels wide, differenced against a running average and
    thresholded; detection then runs only where (regions) and when (frames) something moves.
    """

    model_config = ConfigDict(extra="forbid")

    mode: Literal["gate", "always"] = Field(
        default="gate", description="gate: detect only on motion; always: every frame, whole frame"
    )
    width: int = Field(default=320, ge=32, le=1920, description="width of the downscale motion runs on")
    threshold: int = Field(
        default=25, ge=1, le=255, description="grey-level change that counts as motion, after contrast stretch to 0-255"
    )
    min_area: float = Field(default=0.0005, ge=0, le=1, description="smallest region, as a fraction of the frame")
    alpha: float = Field(default=0.05, gt=0, le=1, description="how fast the background average adapts")
    calibration_frames: int = Field(default=10, ge=0, description="frames used to learn the background first")
    lightning: float = Field(
        default=0.6, gt=0, le=1, description="changed fraction above which a change is global (lights): recalibrate"
    )
    # On by default: at whole-frame resolution MoveNet misses a person lying on the ground in a wide
    # view (their fall goes unseen), and the crop finds a few more people standing far away.
    crop: bool = Field(
        default=True, description="detect on the area that moved plus the people already tracked, not the whole frame"
    )
    crop_margin: float = Field(default=0.05, ge=0, le=0.5, description="crop: padding, as a fraction of the frame side")
    crop_max_area: float = Field(
        default=0.5, gt=0, le=1, description="crop: larger areas than this fraction of the frame are detected whole"
    )


class TamperSettings(BaseModel):
    """``[cameras.<name>.tamper]``: a covered, defocused or moved camera becomes ``camera_tamper``."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    reference_seconds: float = Field(
        default=10.0, ge=0, description="time to learn what the view normally is (it then follows slow change)"
    )
    hold_seconds: float = Field(default=5.0, ge=0, description="how long a condition must last to count")
    covered_brightness: float = Field(
        default=25.0, ge=0, le=255, description="grey level below which a pixel is dark; 85% of the view dark: covered"
    )
    covered_contrast: float = Field(
        default=10.0, ge=0, le=255, description="grey levels around the median that are flat; 85% flat: covered"
    )
    defocus_ratio: float = Field(default=0.35, gt=0, lt=1, description="sharpness vs reference below: defocused")
    moved_similarity: float = Field(default=0.5, gt=0, lt=1, description="edge similarity to reference below: moved")


class CameraSourceConfig(BaseModel):
    """Pipeline options every camera takes, whatever its source."""

    model_config = ConfigDict(extra="forbid")

    detect_fps: float = Field(default=5.0, gt=0, le=120, description="frames per second handed to detection")
    detect_width: int = Field(default=640, ge=32, le=7680, description="frames are downscaled once to this width")
    stall_timeout: float = Field(default=10.0, gt=0, description="seconds without a frame before camera_offline")
    reconnect_initial: float = Field(default=0.5, gt=0, description="first reconnect delay, seconds")
    reconnect_max: float = Field(default=3.0, gt=0, description="longest reconnect delay, seconds")
    motion: MotionSettings = Field(default_factory=MotionSettings)
    tamper: TamperSettings = Field(default_factory=TamperSettings)
    detectors: list[str] = Field(
        default_factory=list, description="names of [detectors.*] tables that see this camera; empty: all"
    )
    tracker: str | None = Field(default=None, description="name of the [trackers.*] table; none: the first one")
    zones: dict[str, Zone] = Field(default_factory=dict, description="named polygons analyzers refer to")
    lines: dict[str, Line] = Field(default_factory=dict, description="named lines for crossing counts")


@dataclass
class CameraStats:
    """Live counters of one camera source (``campusguard probe-stream`` prints them)."""

    connected: bool = False
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    stream_fps: float | None = None
    decoded: int = 0
    delivered: int = 0
    dropped: int = 0
    reconnects: int = 0
    last_error: str | None = None
