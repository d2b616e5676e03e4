"""What the second look (``[detection] second_look``) costs, against the same replay without it.

A second look is an extra detector pass at a crop where a person vanished mid-view (a fall, in a
busy scene). This replays the PETS pedestrians clip (busy: people cross, meet and part all the
time, so tracks vanish mid-view often) through MoveNet + ByteTrack + the fall and fight analyzers,
with and without second looks, taking turns round by round, and reports:

- frames/s of each (the replay's own figure) and their ratio, on / off;
- second looks per processed frame (from the replay's ``second_looks`` JSON lines);
- observations of each (benign footage: there should be none either way).

No goal: the feature trades detector time for seeing falls among passers-by; the live pipeline
skips second looks while frames wait for detection or detection is busy over half the time
(``bench/incident_latency.py`` measures that). JSON in ``bench/results/second_look.json``.

    .venv/bin/python bench/second_look.py [--rounds R]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "pedestrians_640x480.mp4"
RESULTS = ROOT / "bench" / "results" / "second_look.json"
CLI = str(Path(sys.executable).parent / "campusguard")


def config(second_look: bool) -> str:
    return f"""
[core]
log_level = "WARNING"

[detection]
second_look = {str(second_look).lower()}

[cameras.plaza]
type = "file"
path = "{CLIP}"
tamper.enabled = false

[detectors.people]
type = "movenet"

[trackers.main]
type = "bytetrack"

[analyzers.falls]
type = "fall"

[analyzers.fights]
type = "fight"
"""


def replay(work: Path, second_look: bool) -> dict[str, Any]:
    path = work / f"plugins-{second_look}.toml"
    path.write_text(config(second_look))
    events = work / f"events-{second_look}.jsonl"
    result = subprocess.run(
        [CLI, "replay", str(CLIP), "--config", str(path), "--out", str(events)],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    speed = re.search(r"speed:\s+([\d.]+) frames/s", result.stdout)
    assert speed is not None, result.stdout
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    frames = [line for line in lines if line["type"] == "frame"]
    return {
        "fps": float(speed.group(1)),
        "frames": len(frames),
        "second_looks": sum(len(f.get("second_looks", [])) for f in frames),
        "observations": sorted(line["kind"] for line in lines if line["type"] == "observation"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    if not CLIP.exists():
        print(f"{CLIP} not found (the footage lives in ../shared/data)", file=sys.stderr)
        return 1
    subprocess.run([CLI, "models", "install", "movenet"], check=True, capture_output=True)
    work = Path(tempfile.mkdtemp(prefix="second_look-"))
    runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for second_look in (False, True) if round_ % 2 == 0 else (True, False):  # take turns going first
            runs[second_look].append(replay(work, second_look))
    off, on = (statistics.median(r["fps"] for r in runs[k]) for k in (False, True))
    ratios = [b["fps"] / a["fps"] for a, b in zip(runs[False], runs[True], strict=True)]
    looks = runs[True][0]["second_looks"] / max(1, runs[True][0]["frames"])
    print(f"{'':>16} | frames/s (median of {args.rounds}) | second looks per frame | observations")
    print(f"{'second_look off':>16} | {off:27.1f} | {0:22.2f} | {runs[False][0]['observations'] or 'none'}")
    print(f"{'second_look on':>16} | {on:27.1f} | {looks:22.2f} | {runs[True][0]['observations'] or 'none'}")
    print(f"on / off: median of rounds {statistics.median(ratios):.3f} ({', '.join(f'{r:.3f}' for r in ratios)})")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "clip": str(CLIP),
                "median_fps": {"off": off, "on": on},
                "ratio_on_over_off": statistics.median(ratios),
                "round_ratios": ratios,
                "second_looks_per_frame": looks,
                "runs": {"off": runs[False], "on": runs[True]},
                "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
            },
            indent=1,
        )
        + "\n"
    )
    print(f"results: {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
