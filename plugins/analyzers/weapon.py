"""Weapon analyzer: a weapon seen near the same person in ``k`` of their last ``n`` frames arms that person.

Weapons arrive as tracks of their own label (the tracker returns labels it does not track, such as
``weapon``, as tracks from their first sighting). Each frame, every weapon scoring ``min_score`` or
more is attached to the nearest person within ``max_distance`` body sizes (from the weapon's centre to
the person's box or wrists). Counting per person, not per weapon track, makes the k-of-n vote survive a
detector that finds the weapon on and off under new ids, and rejects a single-frame false detection.
Only frames with a fresh detection vote: without motion the pipeline hands the last tracks over again,
and one detection must not count k times.

Once confirmed the person's track gets the ``armed`` flag, which the tracker keeps for the track's
life, and one ``weapon`` observation is emitted. Frames without the weapon never clear it (a weapon
put away is still there). Nothing more is emitted for that person unless ``repeat_seconds`` is set: then
a new confirmation at least that long after the last report emits an update (``attributes.update``).
A weapon confirmed with nobody near it (left on a table) is reported once, without a person, until it
has been gone for ``n`` frames.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, model_validator

from campusguard.sdk import Analyzer, Box, ComponentContext, Evidence, Frame, Observation, Track

from . import pose

ARMED = "armed"


@dataclass(frozen=True)
class _Hit:
    """A weapon as seen in one frame (the track itself moves on)."""

    track_id: int
    label: str
    box: Box
    score: float


@dataclass
class _Votes:
    """The last ``n`` frames of one person (or of a camera's unattended weapons): the weapon seen, or None."""

    frames: deque[_Hit | None]
    seen: float = -math.inf
    reported: float | None = None  # when the last observation went out

    def hits(self) -> list[_Hit]:
        return [w for w in self.frames if w is not None]


def _fresh(track: Track, now: float) -> bool:
    """Detected in this frame, not handed over again from an earlier one (no motion: no detection)."""
    return track.last_seen.monotonic >= now - 1e-6


class WeaponAnalyzer(Analyzer):
    """Emits ``weapon`` once per armed person and flags their track ``armed``."""

    kind = "weapon"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        cameras: list[str] = Field(default_factory=list, description="cameras to watch; empty: all")
        labels: list[str] = Field(default_factory=lambda: ["weapon"], description="track labels that are weapons")
        person_labels: list[str] = Field(default_factory=lambda: ["person"], description="labels that are people")
        k: int = Field(3, ge=1, description="frames with the weapon, of the last n, that confirm it")
        n: int = Field(5, ge=1)
        min_score: float = Field(0.5, ge=0, le=1, description="weapon detections below this are ignored")
        max_distance: float = Field(0.5, ge=0, description="weapon centre to person box or wrist, in body sizes")
        repeat_seconds: float = Field(0.0, ge=0, description="re-report an armed person this often; 0: once")
        keypoint_confidence: float = Field(0.3, ge=0, le=1)
        forget_seconds: float = Field(60.0, gt=0, description="state of a person unseen this long is dropped")

        @model_validator(mode="after")
        def _k_within_n(self) -> WeaponAnalyzer.Config:
            if self.k > self.n:
                raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
            return self

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        self.labels = tuple(self.settings.labels)  # weapons; people only say whom to flag
        self._people: dict[tuple[str, int], _Votes] = {}
        self._unattended: dict[str, _Votes] = {}

    @property
    def settings(self) -> WeaponAnalyzer.Config:
        assert isinstance(self.config, WeaponAnalyzer.Config)
        return self.config

    async def start(self) -> None:
        self._people.clear()
        self._unattended.clear()

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        config = self.settings
        camera, now = frame.camera_id, frame.captured.monotonic
        if config.cameras and camera not in config.cameras:
            return []
        people = [t for t in tracks if t.label in config.person_labels]
        # Only weapons detected in this frame vote: one detection handed over again must not count k times.
        weapons = [t for t in tracks if t.label in config.labels and t.score >= config.min_score and _fresh(t, now)]
        holder: dict[int, Track] = {}  # person id: the strongest weapon attached to them this frame
        loose: Track | None = None
        for weapon in weapons:
            found = pose.nearest_person(weapon.box, people, config.max_distance, config.keypoint_confidence)
            if found is None:
                loose = weapon if loose is None or weapon.score > loose.score else loose
                continue
            person = found[0]
            if person.track_id not in holder or weapon.score > holder[person.track_id].score:
                holder[person.track_id] = weapon
        out: list[Observation] = []
        for person in people:
            votes = self._people.setdefault((camera, person.track_id), _Votes(deque(maxlen=config.n)))
            if votes.reported is not None:
                person.flags.add(ARMED)  # again, in case a tracker hands out copies: it must never clear
            if now <= votes.seen or not _fresh(person, now):
                continue  # the same frame twice, or no new detection: nothing to vote on
            votes.seen = now
            held = holder.get(person.track_id)
            votes.frames.append(_Hit(held.track_id, held.label, held.box, held.score) if held else None)
            if self._confirmed(votes, now):
                person.flags.add(ARMED)
                out.append(self._observation(frame, person, votes))
        votes = self._unattended.setdefault(camera, _Votes(deque(maxlen=config.n)))
        if now > votes.seen and frame.motion:  # without motion nothing was detected: no vote either way
            votes.seen = now
            votes.frames.append(_Hit(loose.track_id, loose.label, loose.box, loose.score) if loose else None)
            if not votes.hits():
                votes.reported = None  # gone for n frames: a weapon seen again is news
            elif self._confirmed(votes, now):
                out.append(self._observation(frame, None, votes))
        self._people = {
            k: v for k, v in self._people.items() if k[0] != camera or now - v.seen <= config.forget_seconds
        }
        return out

    def _confirmed(self, votes: _Votes, now: float) -> bool:
        config = self.settings
        if len(votes.hits()) < config.k or votes.frames[-1] is None:
            return False
        if votes.reported is None:
            return True
        return config.repeat_seconds > 0 and now - votes.reported >= config.repeat_seconds

    def _observation(self, frame: Frame, person: Track | None, votes: _Votes) -> Observation:
        now = frame.captured.monotonic
        update = votes.reported is not None
        votes.reported = now
        hits = votes.hits()
        weapon = hits[-1]
        score = sum(w.score for w in hits) / len(hits)
        evidence = Evidence(frame_id=frame.id, camera_id=frame.camera_id)
        attributes: dict[str, object] = {
            "weapon_label": weapon.label,
            "weapon_score": round(score, 3),
            "frames": f"{len(hits)}/{self.settings.n}",
            "update": update,
        }
        if person is not None:
            evidence.boxes, evidence.track_ids, evidence.scores = (
                [person.box, weapon.box],
                [person.track_id, weapon.track_id],
                [person.score, weapon.score],
            )
            attributes["distance"] = round(
                pose.reach_distance(weapon.box, person, self.settings.keypoint_confidence), 3
            )
        else:
            evidence.boxes, evidence.track_ids, evidence.scores = [weapon.box], [weapon.track_id], [weapon.score]
        return Observation(
            kind="weapon",
            camera_id=frame.camera_id,
            confidence=score,
            track_ids=[person.track_id] if person is not None else [],
            evidence=evidence,
            captured=frame.captured,
            attributes=attributes,
        )
