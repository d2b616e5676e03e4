"""A second, closer look where a person vanished in the middle of the view.

People do not vanish in the middle of a view; a person who falls does, to the detector: MoveNet on
a whole 640x480 frame at 256 px does not see someone lying on the ground (tests/test_fall_footage.py).
The motion crop brings them back in a calm scene, but where others move about too the frame is
detected whole. So when a track that was followed for a while disappears away from the frame's
edges, and nobody stands in front of where it was, the detectors look again, for ``seconds``, at a
crop around the spot: about one body height around the feet (where a body that falls over ends
up), grown to the frame's shape. What they find there joins the frame's detections; a person found
both ways counts once.

Only people are looked for (``labels``). Each spot costs one extra detector pass (a crop of about a
quarter of the frame, at the detector's usual input size; at most ``most`` spots per camera), only
on frames detected whole, and only while no other camera's frame waits for detection and detection
is busy under half the time: a second look never delays a first. A track the detector merely
missed for a frame comes back on the next: a spot is only looked at once its track has stayed gone
``CONFIRM`` seconds, and dropped as soon as it comes back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from campusguard.sdk import Box, Detection, Frame, Track

from .crop import frame_shaped

MIN_TRACKED = 1.0  # seconds a track must have been followed: a flicker is not a person vanishing
CONFIRM = 0.3  # seconds a track must stay gone before its spot is looked at (a missed frame comes back)
EDGE = 0.03  # a box this close to the frame's edge (fraction of its side) may just have walked out
REACH = 1.2  # body heights around the feet that a crop covers: where a body that falls over ends up
SAME = 0.5  # IoU above which a detection from a second look is one already found
SAME_PLACE = 0.3  # IoU of an upright box with where a track vanished: that person is back
UPRIGHT = 0.8  # width / height below which a box is someone upright (the fall analyzer's upright_aspect)


@dataclass(frozen=True)
class Spot:
    """Where to look again: the crop (frame pixels) and the label of the track that vanished there."""

    area: Box
    label: str
    track_id: int  # the track that vanished: when it comes back, it was only missed for a while
    last: Box  # where that track was last seen
    until: float  # monotonic capture time after which the spot is dropped


@dataclass
class SecondLook:
    seconds: float = 10.0
    most: int = 2
    labels: frozenset[str] = frozenset({"person"})  # tracks whose vanishing is worth a second look
    _spots: dict[str, list[Spot]] = field(default_factory=dict)
    _missing: dict[str, dict[int, tuple[Track, float]]] = field(default_factory=dict)  # vanished, since when

    def spots(self, frame: Frame) -> list[Spot]:
        """The spots to look at again in ``frame``, oldest first (expired ones are dropped)."""
        now = frame.captured.monotonic
        alive = [spot for spot in self._spots.get(frame.camera_id, []) if spot.until >= now]
        self._spots[frame.camera_id] = alive
        return alive

    def update(self, frame: Frame, before: Sequence[Track], after: Sequence[Track]) -> None:
        """After tracking ``frame``: note the tracks of ``before`` that vanished in view; those still
        gone ``CONFIRM`` seconds later become spots (detectors miss people for a frame all the time)."""
        if not frame.width or not frame.height:
            return
        now, present = frame.captured.monotonic, {track.track_id for track in after}
        upright = [track.box for track in after if track.box.width < UPRIGHT * track.box.height]

        def back(track_id: int, last: Box) -> bool:
            # The same track again, or someone standing where it was (the tracker gave them a new id):
            # only missed for a while. Someone lying there (what a second look finds) is not.
            return track_id in present or any(_iou(box, last) > SAME_PLACE for box in upright)

        self._spots[frame.camera_id] = [spot for spot in self.spots(frame) if not back(spot.track_id, spot.last)]
        missing = self._missing.setdefault(frame.camera_id, {})
        for track in before:
            if (
                track.label in self.labels
                and track.track_id not in present
                and track.track_id not in missing
                and _vanished_in_view(track, after, frame)
            ):
                missing[track.track_id] = (track, now)
        for track_id, (track, since) in list(missing.items()):
            if back(track_id, track.box) or now - since > self.seconds:
                del missing[track_id]
            elif now - since >= CONFIRM:
                del missing[track_id]
                self._add(frame, track)

    def _add(self, frame: Frame, track: Track) -> None:
        area = _area_around(track.box, frame.width, frame.height)
        if area is None:
            return
        # The same spot again (a person lost twice) is looked at once, for longer. When all ``most``
        # places are taken the new spot waits its turn: the older spots are those whose track has
        # not come back, the likelier falls.
        others = [spot for spot in self.spots(frame) if _iou(spot.area, area) < SAME]
        if len(others) < self.most:
            spot = Spot(area, track.label, track.track_id, track.box, frame.captured.monotonic + self.seconds)
            self._spots[frame.camera_id] = [*others, spot]


def _vanished_in_view(track: Track, others: Sequence[Track], frame: Frame) -> bool:
    if track.last_seen.monotonic - track.first_seen.monotonic < MIN_TRACKED:
        return False
    box = track.box
    margin_x, margin_y = EDGE * frame.width, EDGE * frame.height
    if (
        box.x1 <= margin_x
        or box.y1 <= margin_y
        or box.x2 >= frame.width - margin_x
        or box.y2 >= frame.height - margin_y
    ):
        return False
    # Hidden behind someone who walked in front: not vanished, and they will be seen again.
    return not any(_iou(box, other.box) > 0.0 for other in others)


def _area_around(box: Box, width: int, height: int) -> Box | None:
    feet_x, feet_y, reach = box.center[0], box.y2, REACH * box.height
    area = frame_shaped(
        max(0.0, feet_x - reach), max(0.0, feet_y - reach), min(width, feet_x + reach), min(height, feet_y + reach),
        width, height,
    )  # fmt: skip
    # A person so large that the crop is most of the frame is seen well enough already.
    return area if area.width * area.height < 0.5 * width * height else None


def _iou(a: Box, b: Box) -> float:
    w = min(a.x2, b.x2) - max(a.x1, b.x1)
    h = min(a.y2, b.y2) - max(a.y1, b.y1)
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return inter / (a.width * a.height + b.width * b.height - inter)


def merge(found: list[Detection], extra: Sequence[Detection]) -> None:
    """Add ``extra`` (from a second look) to ``found``; one already there (same label) keeps the better score."""
    for detection in extra:
        same = [i for i, d in enumerate(found) if d.label == detection.label and _iou(d.box, detection.box) >= SAME]
        if not same:
            found.append(detection)
        elif detection.score > found[same[0]].score:
            found[same[0]] = detection
