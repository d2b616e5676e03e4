"""What the zone analyzers share: where a person stands, the camera's zones and lines, evidence.

Zones and lines are drawn per camera in ``plugins.toml`` in normalised coordinates::

    [cameras.courtyard.zones.benches]
    polygon = [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9], [0.1, 0.9]]

An analyzer names its camera and zone; a name that does not exist is a :class:`ConfigError` that
says which camera and which zone, and lists the ones that do exist.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from campusguard.sdk import (
    Analyzer,
    Box,
    CameraSourceConfig,
    ComponentContext,
    ConfigError,
    Evidence,
    Frame,
    Line,
    Observation,
    Track,
    Zone,
)

Point = tuple[float, float]


class CameraAnalyzerConfig(BaseModel):
    """Options every analyzer of one camera takes."""

    model_config = ConfigDict(extra="forbid")

    camera: str = Field(description="the camera (its [cameras.*] table name) this analyzer watches")
    labels: list[str] = Field(default_factory=lambda: ["person"], description="track labels that count")


class ZoneAnalyzerConfig(CameraAnalyzerConfig):
    zone: str = Field(description="a zone of that camera ([cameras.<camera>.zones.<zone>])")


def foot_point(box: Box, frame: Frame) -> Point:
    """Where an object stands: the bottom centre of its box, as fractions of the frame (0..1).

    The feet, not the box centre, decide which zone someone is in: a tall box's centre can sit over
    a zone the person is only standing next to.
    """
    x = (box.x1 + box.x2) / 2 / max(frame.width, 1)
    y = box.y2 / max(frame.height, 1)
    return min(max(x, 0.0), 1.0), min(max(y, 0.0), 1.0)


def camera_config(context: ComponentContext, camera: str) -> CameraSourceConfig:
    config = context.core.camera(camera)
    if config is None:
        raise ConfigError(f"analyzer {context.name!r}: camera {camera!r} is not configured (no [cameras.{camera}])")
    return config


def find_zone(context: ComponentContext, camera: str, zone: str) -> Zone:
    found = camera_config(context, camera).zones.get(zone)
    if found is None:
        raise ConfigError(_missing(context, camera, "zone", zone, camera_config(context, camera).zones))
    return found


def find_line(context: ComponentContext, camera: str, line: str) -> Line:
    found = camera_config(context, camera).lines.get(line)
    if found is None:
        raise ConfigError(_missing(context, camera, "line", line, camera_config(context, camera).lines))
    return found


def _missing(context: ComponentContext, camera: str, what: str, name: str, known: Iterable[str]) -> str:
    names = ", ".join(sorted(known)) or "none"
    return (
        f"analyzer {context.name!r}: camera {camera!r} has no {what} {name!r} "
        f"(add [cameras.{camera}.{what}s.{name}]; its {what}s: {names})"
    )


def in_zone(zone: Zone | None, frame: Frame, tracks: Sequence[Track], labels: Sequence[str]) -> list[Track]:
    """The tracks with a wanted label whose foot point is inside ``zone`` (None: the whole view)."""
    return [t for t in tracks if t.label in labels and (zone is None or zone.contains(*foot_point(t.box, frame)))]


def observe(
    kind: str,
    frame: Frame,
    tracks: Sequence[Track],
    *,
    zone: str | None,
    attributes: dict[str, Any],
    confidence: float | None = None,
) -> Observation:
    """An observation with its evidence: the frame, and the boxes, ids and scores of ``tracks``."""
    scores = [t.score for t in tracks]
    if confidence is None:  # the mean score of what backs it; nothing seen in this frame backs nothing
        confidence = sum(scores) / len(scores) if scores else 0.0
    ids = [t.track_id for t in tracks]
    return Observation(
        kind=kind,
        camera_id=frame.camera_id,
        zone=zone,
        confidence=confidence,
        track_ids=ids,
        evidence=Evidence(
            frame_id=frame.id, camera_id=frame.camera_id, boxes=[t.box for t in tracks], track_ids=ids, scores=scores
        ),
        captured=frame.captured,
        attributes=attributes,
    )


class ZoneAnalyzer(Analyzer):
    """An analyzer of one zone of one camera (a config without ``zone``: the whole view).

    Frames of other cameras are ignored.
    """

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, CameraAnalyzerConfig)
        self.camera_id = config.camera
        self.labels = tuple(config.labels)
        self.zone_name: str | None = getattr(config, "zone", None)
        self._zone: Zone | None = None

    async def start(self) -> None:
        # A wrong zone name fails at start (a setup_error naming it), not at the first person.
        self._zone = None
        self.zone()

    def zone(self) -> Zone | None:
        if self._zone is None and self.zone_name is not None:
            self._zone = find_zone(self.context, self.camera_id, self.zone_name)
        return self._zone

    def watches(self, frame: Frame) -> bool:
        return frame.camera_id == self.camera_id

    def inside(self, frame: Frame, tracks: Sequence[Track]) -> list[Track]:
        return in_zone(self.zone(), frame, tracks, self.labels)
