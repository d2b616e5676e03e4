"""Per-frame cost of the motion gate and the tamper monitor on real footage, against floors measured
in the same run.

Goal: ``MotionGate.update`` under 1 ms per 640x480 frame on one core (``--check`` exits 1 otherwise).
Baselines in the same run on the same frames:

- resize: ``cv2.resize`` of the frame to the motion width, bilinear (the cheapest way to get there: the
  floor for any gate that looks at a downscale) and area (the naive good-quality choice);
- decode: PyAV decoding the same clip to BGR arrays, one thread, which every frame costs anyway.

Footage: ``../shared/data/pedestrians_640x480.mp4`` (people walking, 10 fps). For 1920x1080 the frames
are upscaled, and re-encoded to H.264 in memory so that decoding is measured at that size too.
OpenCV runs on one thread, as in the camera runner's worker. Frames sit in memory as distinct arrays,
so every call reads a frame that is not in the CPU cache, as in real use.

    .venv/bin/python bench/motion_gate.py [--rounds R] [--check]
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from cv2.typing import MatLike

from campusguard.core.pipeline.motion import MotionGate
from campusguard.core.pipeline.tamper import TamperMonitor
from campusguard.sdk.camera import MotionSettings, TamperSettings

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "pedestrians_640x480.mp4"
RESULTS = ROOT / "bench" / "results" / "motion_gate.json"
GOAL_US = 1000.0
WARMUP = 20  # frames: the gate calibrates (10) and the tamper monitor learns its reference (2 s at 10 fps)
LARGE = (1920, 1080)
LARGE_FRAMES = 100  # 1080p frames are 6 MB each: a third of the clip is enough
MOTION = MotionSettings()
TAMPER = TamperSettings(reference_seconds=2.0)

Image = MatLike  # what OpenCV and PyAV hand back; numpy uint8 arrays here
PerFrame = Callable[[Image, int], object]


def decode(data: bytes) -> tuple[list[Image], float]:
    """All frames of an encoded clip as BGR arrays, and microseconds per frame, on one thread."""
    with av.open(io.BytesIO(data), mode="r") as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        start = time.perf_counter_ns()
        frames: list[Image] = [frame.to_ndarray(format="bgr24") for frame in container.decode(stream)]
        elapsed = time.perf_counter_ns() - start
    return frames, elapsed / 1000 / len(frames)


def encode(frames: Sequence[Image]) -> bytes:
    """H.264 as a camera would send it (CABAC on: preset veryfast, not ultrafast)."""
    out = io.BytesIO()
    with av.open(out, "w", format="mp4") as container:
        height, width = frames[0].shape[:2]
        stream = container.add_stream("libx264", rate=10, options={"preset": "veryfast", "crf": "23"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for image in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.asarray(image, dtype=np.uint8), format="bgr24")))
        container.mux(stream.encode(None))
    return out.getvalue()


def per_frame(frames: Sequence[Image], call: PerFrame) -> list[float]:
    """Microseconds per call, after WARMUP untimed frames."""
    times = []
    for i, frame in enumerate(frames):
        start = time.perf_counter_ns()
        call(frame, i)
        if i >= WARMUP:
            times.append((time.perf_counter_ns() - start) / 1000)
    return times


def cases(width: int, height: int) -> dict[str, Callable[[], PerFrame]]:
    """Each case builds a fresh per-frame callable (fresh state) for every round."""
    small = (MOTION.width, round(height * MOTION.width / width))

    def resize(interpolation: int) -> Callable[[], PerFrame]:
        return lambda: lambda frame, i: cv2.resize(frame, small, interpolation=interpolation)

    def gate() -> PerFrame:
        g = MotionGate(MOTION)
        return lambda frame, i: g.update(frame)

    def tamper() -> PerFrame:
        t = TamperMonitor(TAMPER)
        return lambda frame, i: t.update(frame, i / 10)

    def both() -> PerFrame:
        g, t = MotionGate(MOTION), TamperMonitor(TAMPER)
        return lambda frame, i: (g.update(frame), t.update(frame, i / 10))

    return {
        f"resize to {MOTION.width} (bilinear)": resize(cv2.INTER_LINEAR),
        f"resize to {MOTION.width} (area)": resize(cv2.INTER_AREA),
        "MotionGate.update": gate,
        "TamperMonitor.update": tamper,
        "gate + tamper": both,
    }


def summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "mean_us": statistics.fmean(times),
        "median_us": statistics.median(times),
        "p90_us": ordered[round(0.9 * (len(ordered) - 1))],
        "samples": len(times),
    }


def measure(name: str, data: bytes, frames: list[Image], rounds: int) -> dict[str, Any]:
    height, width = frames[0].shape[:2]
    built = cases(width, height)
    samples: dict[str, list[float]] = {"decode (PyAV, bgr24)": [], **{label: [] for label in built}}
    for r in range(rounds):
        samples["decode (PyAV, bgr24)"].append(decode(data)[1])
        order = list(built) if r % 2 == 0 else list(reversed(built))  # drift hits every case alike
        for label in order:
            samples[label].extend(per_frame(frames, built[label]()))
    return {"size": name, "frames": len(frames), "cases": {k: {**summary(v), "raw_us": v} for k, v in samples.items()}}


def report(results: list[dict[str, Any]]) -> dict[str, float]:
    labels = list(results[0]["cases"])
    print(f"\n{'per frame, mean (p90) in µs':34s}" + "".join(f"{r['size']:>22s}" for r in results))
    for label in labels:
        cells = "".join(f"{r['cases'][label]['mean_us']:>13.1f} ({r['cases'][label]['p90_us']:>6.1f})" for r in results)
        print(f"{label:34s}{cells}")
    ratios: dict[str, float] = {}
    print()
    for r in results:
        mean = {label: case["mean_us"] for label, case in r["cases"].items()}
        floor, decoded = mean[f"resize to {MOTION.width} (bilinear)"], mean["decode (PyAV, bgr24)"]
        for label in ("MotionGate.update", "TamperMonitor.update", "gate + tamper"):
            ratios[f"{r['size']} {label} / resize"] = mean[label] / floor
            ratios[f"{r['size']} {label} / decode"] = mean[label] / decoded
            print(
                f"{r['size']:>9s} {label:22s} {mean[label] / floor:5.1f}x the bilinear resize, "
                f"{mean[label] / decoded:5.2f}x decoding"
            )
    return ratios


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args(argv)
    if not CLIP.exists():
        sys.exit(f"footage not found: {CLIP}")
    cv2.setNumThreads(1)

    clip = CLIP.read_bytes()
    frames, _ = decode(clip)
    large = [cv2.resize(f, LARGE, interpolation=cv2.INTER_LINEAR) for f in frames[:LARGE_FRAMES]]
    large_clip = encode(large)
    results = [
        measure("640x480", clip, frames, args.rounds),
        measure(f"{LARGE[0]}x{LARGE[1]}", large_clip, large, args.rounds),
    ]
    ratios = report(results)

    gate_us = results[0]["cases"]["MotionGate.update"]["mean_us"]
    ok = gate_us < GOAL_US
    print(
        f"\nMotionGate.update at 640x480: {gate_us:.0f} µs per frame (goal < {GOAL_US:.0f}): {'PASS' if ok else 'FAIL'}"
    )
    payload = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "opencv": cv2.__version__,
        "av": av.__version__,
        "opencv_threads": cv2.getNumThreads(),
        "rounds": args.rounds,
        "motion": MOTION.model_dump(),
        "tamper": TAMPER.model_dump(),
        "goal_us": GOAL_US,
        "pass": ok,
        "ratios": ratios,
        "results": results,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=1) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    raise SystemExit(main())
