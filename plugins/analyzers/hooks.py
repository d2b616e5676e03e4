"""Registers the built-in analyzers through the same hook as any third-party plugin."""

from __future__ import annotations

from campusguard.sdk import Analyzer, Registry, hookimpl

from .crowd import CrowdAnalyzer
from .intrusion import IntrusionAnalyzer
from .line_crossing import LineCrossingAnalyzer
from .loitering import LoiteringAnalyzer

ZONES: tuple[type[Analyzer], ...] = (IntrusionAnalyzer, LoiteringAnalyzer, CrowdAnalyzer, LineCrossingAnalyzer)


@hookimpl
def campusguard_register_analyzers(registry: Registry[Analyzer]) -> None:
    for cls in ZONES:
        registry.add(cls)
    for cls in POSE:
        registry.add(cls)


POSE: tuple[type[Analyzer], ...]
try:  # registered once the pose/weapon analyzers land
    from .fall import FallAnalyzer
    from .fight import FightAnalyzer
    from .weapon import WeaponAnalyzer
except ImportError:  # pragma: no cover
    POSE = ()
else:
    POSE = (FallAnalyzer, FightAnalyzer, WeaponAnalyzer)
