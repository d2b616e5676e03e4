"""Real pedestrian trajectories (MOT ground truth of TUD-Campus and TUD-Stadtmitte) from the
``motmetrics`` wheel on PyPI. The package itself breaks on numpy 2, so its wheel is only
downloaded (no dependencies) and its data files read; they are cached between runs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL = "motmetrics==1.4.0"
CACHE = Path.home() / ".cache" / "campusguard" / "test-data" / "motmetrics"


def mot_data() -> Path:
    """The folder holding ``TUD-Campus/gt.txt`` and ``TUD-Stadtmitte/gt.txt``."""
    spec = importlib.util.find_spec("motmetrics")  # installed: use it without importing it
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "data"
    data = CACHE / "data"
    if (data / "TUD-Campus" / "gt.txt").is_file():
        return data
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--only-binary=:all:", "-q", "-d", tmp],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        (wheel,) = Path(tmp).glob("motmetrics-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for member in archive.namelist():
                if member.startswith("motmetrics/data/TUD-") and member.endswith("gt.txt"):
                    target = CACHE / member.removeprefix("motmetrics/")
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(archive.read(member))
    return data
