"""The real test footage: PETS pedestrians, 640x480, 10 fps, 300 frames.

It lives in ``../shared/data`` beside the project. Where that folder is absent (a clone elsewhere),
``.ci/run`` rebuilds the clip from its documented source, Debian's ``opencv-doc`` ``vtest.avi``,
with the same ffmpeg recipe, and points ``CAMPUSGUARD_FOOTAGE`` at it.
"""

from __future__ import annotations

import os
from pathlib import Path

NAME = "pedestrians_640x480.mp4"
ROOT = Path(__file__).resolve().parents[2]
CACHE = Path.home() / ".cache" / "campusguard" / "test-data" / NAME


def find_pedestrians() -> Path:
    candidates = [Path(os.environ["CAMPUSGUARD_FOOTAGE"])] if os.environ.get("CAMPUSGUARD_FOOTAGE") else []
    candidates += [ROOT.parent / "shared" / "data" / NAME, CACHE]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"test footage {NAME} not found in {', '.join(map(str, candidates))}: run .ci/run (it rebuilds the clip "
        "from Debian's opencv-doc) or set CAMPUSGUARD_FOOTAGE"
    )


PEDESTRIANS = find_pedestrians()
