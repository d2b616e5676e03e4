"""Finds analyzers that can never fire because no detector of their camera reports their labels.

A weapon analyzer on a camera whose only detector is MoveNet (people) waits for ``weapon`` tracks
that never come. Nothing fails, so without this check a site would believe it is covered. The
check runs whenever the set of running detectors or analyzers of a camera changes (a component
that starts late joins), and warns once per analyzer and camera.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from campusguard.sdk import Analyzer, Detector

log = logging.getLogger("campusguard.pipeline")


@dataclass(frozen=True)
class LabelGap:
    """An analyzer on a camera whose detectors report none of the labels it fires on."""

    camera_id: str
    analyzer: str
    wanted: tuple[str, ...]
    reported: tuple[str, ...]
    detectors: tuple[str, ...]

    def message(self) -> str:
        return (
            f"analyzer {self.analyzer!r} on camera {self.camera_id!r} fires on tracks labelled "
            f"{' or '.join(self.wanted)}, but the camera's detectors ({', '.join(self.detectors)}) report only "
            f"{', '.join(self.reported)}: it can never fire. Add a detector that reports "
            f"{' or '.join(self.wanted)} (a `yolo` model, with `label_map` naming its classes so) "
            "or change the analyzer's `labels`"
        )


def label_gaps(
    camera_id: str, detectors: Sequence[tuple[str, Detector]], analyzers: Sequence[tuple[str, Analyzer]]
) -> list[LabelGap]:
    """The analyzers among ``analyzers`` that none of ``detectors`` can feed.

    Nothing is reported when a detector does not declare its labels (the core cannot tell what it
    finds) or when no detector runs at all (the supervisor already reports one that failed to start).
    """
    if not detectors or any(not detector.labels for _, detector in detectors):
        return []
    reported = tuple(dict.fromkeys(label for _, detector in detectors for label in detector.labels))
    names = tuple(name for name, _ in detectors)
    return [
        LabelGap(camera_id, name, analyzer.labels, reported, names)
        for name, analyzer in analyzers
        if analyzer.labels and not set(analyzer.labels) & set(reported)
    ]


class CoverageWatch:
    """Checks each camera's detectors against its analyzers when either changes; warns once per gap."""

    def __init__(self) -> None:
        self._checked: set[tuple[str, tuple[str, ...], tuple[str, ...]]] = set()
        self.gaps: dict[tuple[str, str], LabelGap] = {}  # (camera, analyzer): the gap found last

    def check(
        self, camera_id: str, detectors: Sequence[tuple[str, Detector]], analyzers: Sequence[tuple[str, Analyzer]]
    ) -> None:
        key = (camera_id, tuple(name for name, _ in detectors), tuple(name for name, _ in analyzers))
        if key in self._checked:  # the usual case, every frame: nothing changed
            return
        self._checked.add(key)
        found = {(gap.camera_id, gap.analyzer): gap for gap in label_gaps(camera_id, detectors, analyzers)}
        for where in [where for where in self.gaps if where[0] == camera_id and where not in found]:
            del self.gaps[where]  # a detector that reports the label has joined
        for where, gap in found.items():
            if self.gaps.get(where) != gap:
                log.warning("%s", gap.message())
            self.gaps[where] = gap


def configured_gaps(specs: Sequence[Any], build: Callable[[Any], Any]) -> list[LabelGap]:
    """The gaps a config has before anything starts (``campusguard check``), where the detectors
    declare their labels on the class (MoveNet, HOG); one whose labels come from its model file (a
    YOLO model) is only known once started, so its cameras are judged at run time instead."""
    from .processor import applies_to

    detectors = [(s.name, build(s)) for s in specs if s.table == "detectors"]
    analyzers = [(s.name, build(s)) for s in specs if s.table == "analyzers"]
    gaps: list[LabelGap] = []
    for camera in (s for s in specs if s.table == "cameras"):
        wanted = getattr(camera.config, "detectors", None) or []
        mine = [(name, d) for name, d in detectors if not wanted or name in wanted]
        watching = [(name, a) for name, a in analyzers if applies_to(a, camera.name)]
        gaps += label_gaps(camera.name, mine, watching)
    return gaps
