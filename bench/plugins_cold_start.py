"""Cold-start wall time of ``campusguard plugins`` and ``campusguard version`` as subprocesses.

Goal: ``campusguard plugins`` answers well under a second (``--check`` fails at a median >= 1.0 s).
Baselines in the same run put the number in context: a bare interpreter (``python -c pass``) and
one that imports the two libraries every command needs (``import pydantic, pluggy``). Commands
are interleaved run by run so that drift hits all of them alike; median and p90 are reported.

    .venv/bin/python bench/plugins_cold_start.py [--runs N] [--check]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "plugins_cold_start.json"
GOAL_S = 1.0
BASELINE = "python -c pass"
CHECKED = "campusguard plugins"


@dataclass
class Case:
    label: str
    argv: list[str]
    times_ms: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def p90(self) -> float:
        ordered = sorted(self.times_ms)
        return ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]


def console_script() -> Path:
    # The venv's entry point sits next to its interpreter; don't fall back to whatever is on PATH.
    script = Path(sys.executable).parent / "campusguard"
    if not script.exists():
        sys.exit(f"no campusguard console script next to {sys.executable}; run `make` first")
    return script


def build_cases() -> list[Case]:
    script = str(console_script())
    return [
        Case(BASELINE, [sys.executable, "-c", "pass"]),
        Case("python -c 'import pydantic, pluggy'", [sys.executable, "-c", "import pydantic, pluggy"]),
        Case("campusguard version", [script, "version"]),
        Case(CHECKED, [script, "plugins"]),
    ]


def time_once(argv: list[str]) -> float:
    """Wall milliseconds from spawn to exit. Fails loudly: a broken command must not look fast."""
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    elapsed = (time.perf_counter() - start) * 1000
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}")
    return elapsed


def run(cases: list[Case], runs: int, warmup: int) -> None:
    # Warm-up runs fill the OS page cache and write .pyc files; "cold" here means a new process.
    for case in cases:
        for _ in range(warmup):
            time_once(case.argv)
    for _ in range(runs):
        for case in cases:
            case.times_ms.append(time_once(case.argv))


def report(cases: list[Case]) -> bool:
    base = cases[0].median
    print(f"\npython {platform.python_version()} on {platform.machine()}, {len(cases[0].times_ms)} runs each\n")
    print(f"{'command':<38} {'median ms':>10} {'p90 ms':>10} {'min ms':>10} {'x baseline':>11}")
    for c in cases:
        print(f"{c.label:<38} {c.median:>10.1f} {c.p90:>10.1f} {min(c.times_ms):>10.1f} {c.median / base:>11.2f}")
    checked = next(c for c in cases if c.label == CHECKED)
    ok = checked.median < GOAL_S * 1000
    print(
        f"\n{CHECKED}: median {checked.median:.1f} ms, p90 {checked.p90:.1f} ms, "
        f"{checked.median / base:.2f}x `{BASELINE}` (goal < {GOAL_S * 1000:.0f} ms): {'PASS' if ok else 'FAIL'}"
    )
    return ok


def write_json(cases: list[Case], ok: bool) -> None:
    base = cases[0].median
    payload = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "goal_ms": GOAL_S * 1000,
        "pass": ok,
        "cases": {
            c.label: {
                "argv": c.argv,
                "median_ms": c.median,
                "p90_ms": c.p90,
                "ratio_to_baseline": c.median / base,
                "times_ms": c.times_ms,
            }
            for c in cases
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()
    print(f"results: {RESULTS}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs per command first")
    parser.add_argument("--check", action="store_true", help=f"exit 1 if `{CHECKED}` has a median >= {GOAL_S} s")
    args = parser.parse_args(argv)
    cases = build_cases()
    run(cases, args.runs, args.warmup)
    ok = report(cases)
    write_json(cases, ok)
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
