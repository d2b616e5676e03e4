"""What campusguard's YOLO detector adds to the raw ONNX Runtime call, on the same model and input.

Goal: ``raw / campusguard >= 0.95`` (per-call time of a bare ``session.run`` on a tensor that is
already letterboxed, over the time of ``await detector.detect([frame])``, as the median of the
call-by-call ratios); ``--check`` exits 1 otherwise. Three ways to get detections from one frame,
taking turns call by call so that load from anything else on the machine hits all three alike:

- raw: ``session.run`` on the pre-letterboxed tensor (the detector's own ONNX Runtime session); no
  pre- or post-processing at all: the floor;
- direct: letterbox into the input tensor + ``session.run`` + decode + NMS (``detectors/yolo_decode.py``)
  called in line, no thread hop, no Detection objects: what any YOLO integration must do;
- campusguard: ``await YoloDetector.detect([frame])``: all of the above plus the hop to the
  detector's worker thread and the pydantic ``Detection`` objects.

raw and direct run, and are timed, on the detector's own worker thread: the thread that calls the
session in any deployment. Called from another thread, the session would change threads around every
campusguard call, a cache hand-over no deployment pays. ``raw_main`` (raw called from the benchmark's
main thread, the old baseline) is still measured and shown.

The model: ``bench/tensorrt_check.py``'s random-weight YOLOv8-shaped net (output [1, 84, 8400],
~20 boxes above 0.25) at 640x640, in two widths: 8.5 GFLOPs (YOLOv8n's compute, the smallest model a
school would deploy: the goal is judged on it) and 3.8 GFLOPs (to show how the fixed cost weighs on
a cheaper model). The frames: real footage, 640x480 (padded only) and the same frame at 1920x1080
(resized as well). Results, with every sample, go to
``bench/results/detector_overhead.json``.

    .venv/bin/python bench/detector_overhead.py [--rounds R] [--calls N] [--threads T] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from tensorrt_check import CONFIDENCE, IOU, SIZE, calibrated_model, gflops

from campusguard.detectors.yolo import YoloDetector
from campusguard.detectors.yolo_decode import DecodeSpec, InputBuffer, letterbox, postprocess, to_tensor
from campusguard.sdk import Frame
from campusguard.sdk.testing.stubs import make_context

ROOT = Path(__file__).resolve().parent.parent
CLIP = ROOT.parent / "shared" / "data" / "pedestrians_640x480.mp4"
RESULTS = ROOT / "bench" / "results" / "detector_overhead.json"
GOAL = 0.95
# The goal is judged on the smallest real YOLO's compute; the half-size net shows how overhead scales.
MODELS = {"yolov8n-size": 1.5, "half-size": 1.0}  # channel width of tensorrt_check's net: 8.5 / 3.8 GFLOPs
GOAL_MODEL = "yolov8n-size"


def footage_frame(index: int = 150) -> np.ndarray:
    with av.open(str(CLIP)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return frame.to_ndarray(format="bgr24")
    raise ValueError(f"{CLIP} has fewer than {index + 1} frames")


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


async def measure(model: Path, image: np.ndarray, *, rounds: int, calls: int, threads: int) -> dict[str, Any]:
    tensor = to_tensor([letterbox(image, (SIZE, SIZE))[0]])
    spec = DecodeSpec("v8", np.full(80, CONFIDENCE), np.arange(80), IOU)
    frame = Frame(camera_id="bench", sequence=0, width=image.shape[1], height=image.shape[0], image=image)
    config = YoloDetector.Config(model=model, threads=threads)
    detector = YoloDetector("bench", config, make_context("bench", Path(tempfile.mkdtemp())))
    await detector.start()
    # The detector's own session: one copy of the weights and one thread pool for all three ways,
    # so that none gains from the others warming its caches. (threads as given, no spinning).
    session = detector._model.runner.session  # type: ignore[union-attr, attr-defined]
    name = session.get_inputs()[0].name

    def raw() -> object:
        return session.run(None, {name: tensor})

    buffer = InputBuffer(1, (SIZE, SIZE))

    def direct() -> tuple[np.ndarray, ...]:
        lb = buffer.put(0, image)
        output = session.run(None, {name: buffer.tensor})[0]
        return postprocess(output[0], spec, lb)

    loop = asyncio.get_running_loop()
    worker = detector._executor  # the session's own thread

    async def in_worker(call: Callable[[], object]) -> float:
        return await loop.run_in_executor(worker, timed, call)

    async def campusguard() -> float:
        start = time.perf_counter_ns()
        await detector.detect([frame])
        return (time.perf_counter_ns() - start) / 1e6

    kinds = ("raw", "direct", "campusguard", "raw_main")
    samples: dict[str, list[list[float]]] = {kind: [] for kind in kinds}
    try:
        found = (await detector.detect([frame]))[0]
        for _ in range(5):  # warm caches and the worker thread
            await in_worker(raw), await in_worker(direct), await campusguard(), raw()
        for _ in range(rounds):
            per: dict[str, list[float]] = {k: [] for k in samples}
            for i in range(calls):
                # Take turns at going first, so that none always runs right after another.
                for kind in kinds[i % 4 :] + kinds[: i % 4]:
                    if kind == "campusguard":
                        per[kind].append(await campusguard())
                    elif kind == "raw_main":
                        per[kind].append(timed(raw))
                    else:
                        per[kind].append(await in_worker(raw if kind == "raw" else direct))
            for kind, values in per.items():
                samples[kind].append(values)
    finally:
        await detector.stop()

    def paired(a: str, b: str) -> list[float]:
        """a / b call by call: neighbours in time, so the machine's load drifts out of the ratio."""
        return [x / y for ra, rb in zip(samples[a], samples[b], strict=True) for x, y in zip(ra, rb, strict=True)]

    ratios = paired("raw", "campusguard")
    per_round = [statistics.median(ratios[r * calls : (r + 1) * calls]) for r in range(rounds)]
    return {
        "frame": f"{image.shape[1]}x{image.shape[0]}",
        "detections": len(found),
        "direct_detections": len(direct()[0]),
        "median_ms": {k: statistics.median(v for r in rounds_ for v in r) for k, rounds_ in samples.items()},
        "ratio_raw_over_campusguard": statistics.median(ratios),
        "ratio_raw_over_direct": statistics.median(paired("raw", "direct")),
        "ratio_direct_over_campusguard": statistics.median(paired("direct", "campusguard")),
        "ratio_raw_main_over_campusguard": statistics.median(paired("raw_main", "campusguard")),
        "round_ratios": per_round,
        "samples_ms": samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20, help="calls of each kind per round")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads (the detector's default)")
    parser.add_argument("--check", action="store_true", help="exit 1 when the goal is missed")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="detector_overhead-"))
    small = footage_frame()
    large = cv2.resize(small, (1920, 1080), interpolation=cv2.INTER_LINEAR)
    cases: dict[str, dict[str, Any]] = {}
    for model_label, width in MODELS.items():
        model = calibrated_model(work / f"yolo_like_{width}.onnx", width=width)
        for frame_label, image in [("640x480", small), ("1920x1080", large)]:
            result = asyncio.run(measure(model, image, rounds=args.rounds, calls=args.calls, threads=args.threads))
            cases[f"{model_label}, {frame_label}"] = {"model_gflops": gflops(model), **result}

    print(
        f"{'case':>30} | {'raw ms':>7} | {'direct ms':>9} | {'campusguard ms':>14} | raw/campusguard | "
        "direct/campusguard | raw_main/campusguard | boxes"
    )
    for label, r in cases.items():
        m = r["median_ms"]
        print(
            f"{label:>30} | {m['raw']:7.2f} | {m['direct']:9.2f} | {m['campusguard']:14.2f} | "
            f"{r['ratio_raw_over_campusguard']:15.3f} | {r['ratio_direct_over_campusguard']:18.3f} | "
            f"{r['ratio_raw_main_over_campusguard']:20.3f} | {r['detections']}"
        )
    goal_cases = {k: v for k, v in cases.items() if k.startswith(GOAL_MODEL)}
    worst = min(r["ratio_raw_over_campusguard"] for r in goal_cases.values())
    passed = worst >= GOAL
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        json.dumps(
            {
                "goal": f"raw / campusguard >= {GOAL} with the {GOAL_MODEL} model",
                "passed": passed,
                "worst_ratio": worst,
                "model": {"input": [1, 3, SIZE, SIZE], "output": [1, 84, 8400], "widths": MODELS},
                "threads": args.threads,
                "rounds": args.rounds,
                "calls": args.calls,
                "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
                "cases": cases,
            },
            indent=1,
        )
        + "\n"
    )
    print(f"{'PASS' if passed else 'FAIL'}: raw/campusguard {worst:.3f} (goal >= {GOAL}); {RESULTS}")
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
