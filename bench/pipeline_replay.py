"""``campusguard replay`` and the MoveNet detector against bare PyAV + LiteRT, in the same run.

Two goals, both against a baseline measured in the same process on the same machine:

- **pipeline**: frames/s of ``campusguard replay`` (``core.replay.replay``: decode, rate cap, BGR,
  motion gate, MoveNet in its worker thread, ByteTrack, three analyzers) on the sample clip, with
  ``motion.mode = "always"`` so that every selected frame goes to detection, over frames/s of raw
  PyAV decoding + raw LiteRT MoveNet passes of the same frames: goal >= 0.9. Measured at detect_fps
  10 (all 300 frames) and 5 (150 frames). The default motion gate (``"gate"``) is measured as well
  and reported on its own: it skips still frames, so it may beat the raw baseline; it is not the ratio.
- **detector overhead**: per-call time of a hand-written integration (the same resize, pad, LiteRT
  call, decoding and tiling, vectorised, in line) over ``await MoveNetDetector.detect([frame])``, on
  the same interpreter and frames, median of call-by-call ratios: goal >= 0.95. The bare interpreter
  call on a prepared tensor and the detector's engine called in line are reported alongside. The raw
  kinds run (and are timed) in the detector's own worker thread, as the interpreter is used in
  production: one interpreter called from two threads in turn costs ~0.6 ms a call in cache and
  thread hand-over that no deployment pays. ``direct_main`` (the baseline called from the main thread,
  as this bench did before) is still measured and shown.

The raw baseline does the model passes the detector does: the input is the frame scaled so its long
side is ``input_size`` (256), padded bottom/right up to multiples of 32 (640x480 -> 256x192), the same
thread count (2); and, when the full pass comes back saturated (all 6 slots scoring >= half the person
threshold: ``tile = "auto"``, the detector's default), the same 2x2 overlapping tiles. Without that it
would run fewer passes than the detector on crowded frames (26 of the clip's 300).

Rounds take turns at going first. Each run records how many CPUs other processes kept busy meanwhile
(``/proc/stat`` less this process); on this 2-core machine a busy neighbour slows the 2-thread model
far more than campusguard's own work, so the verdicts use the rounds where others stayed under 0.2
CPUs ("quiet") when there are any, and say so.

    .venv/bin/python bench/pipeline_replay.py [--rounds R] [--calls N] [--quick] [--check] [--profile]

JSON with every sample: ``bench/results/pipeline_replay.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import inspect
import json
import math
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import av
import cv2
import numpy as np
import numpy.typing as npt

from campusguard.core.config import parse_config_text
from campusguard.core.replay import replay
from campusguard.detectors.models import model_path
from campusguard.detectors.movenet import MoveNetConfig, MoveNetDetector
from campusguard.sdk import Frame
from campusguard.sdk.testing.stubs import make_context
from campusguard.sdk.video import RateCap, scaled_size

ROOT = Path(__file__).resolve().parents[1]
CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "pedestrians_640x480.mp4"
RESULTS = ROOT / "bench" / "results" / "pipeline_replay.json"
PROFILE = ROOT / "bench" / "results" / "pipeline_replay.prof"
GOAL_PIPELINE = 0.9
GOAL_DETECTOR = 0.95
LOAD_WARNING = 1.5  # load average above which the numbers are suspect on this 2-core machine
QUIET_CPUS = 0.2  # a run is "quiet" when other processes kept less than this many CPUs busy meanwhile
DETECT_WIDTH = 640  # CameraSourceConfig's default; the clip is 640x480, so frames are not scaled
CAMERA = "clip"

# The detector's rules (detectors/_movenet_pose.py), restated so the baseline owes campusguard nothing.
MAX_PEOPLE = 6
SATURATED = 0.5  # of the person threshold: a full 6th slot this strong means the pass ran out of slots
TILE_OVERLAP = 0.15
NMS_IOU = 0.5
FRAGMENT_IOS = 0.6
EDGE_PX = 2.0

Image = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]
TileMode = Literal["auto", "always", "off"]
RAW, ALWAYS, GATE = "raw", "campusguard always", "campusguard gate"
PIPELINE_KINDS = (RAW, ALWAYS, GATE)
CALL_KINDS = ("invoke", "direct", "engine", "campusguard", "direct_main")


# --- the raw baseline: bare LiteRT ---------------------------------------------------------------------------------


def _ceil32(value: float) -> int:
    return max(32, math.ceil(value / 32) * 32)


def tile_boxes(w: int, h: int, max_tiles: int) -> list[tuple[int, int, int, int]]:
    """The detector's tiles: n x n (largest n*n <= max_tiles), overlapping; else 2 along the long side."""
    n = math.isqrt(max_tiles)
    if n >= 2:
        cols, rows = n, n
    elif max_tiles >= 2:
        cols, rows = (2, 1) if w >= h else (1, 2)
    else:
        return []

    def spans(length: int, k: int) -> list[tuple[int, int]]:
        size = length / (k - (k - 1) * TILE_OVERLAP)
        step = size * (1 - TILE_OVERLAP)
        return [(round(i * step), min(length, round(i * step + size))) for i in range(k)]

    return [(x0, y0, x1, y1) for y0, y1 in spans(h, rows) for x0, x1 in spans(w, cols)]


@dataclass
class Prepared:
    """One model input: the tensor and how the image sits in it."""

    tensor: Image
    h: int  # the image's size
    w: int
    rh: int  # its size once scaled into the tensor (the rest is zero padding, bottom/right)
    rw: int


class RawMoveNet:
    """A LiteRT interpreter driven by hand: set_tensor / invoke / get_tensor, nothing of campusguard's."""

    def __init__(self, model: Path, input_size: int, threads: int, *, interpreter: Any | None = None) -> None:
        from ai_edge_litert.interpreter import Interpreter  # type: ignore[import-untyped]

        self.shared = interpreter is not None
        self.interp: Any = interpreter or Interpreter(model_path=str(model), num_threads=threads)
        inp, out = self.interp.get_input_details()[0], self.interp.get_output_details()[0]
        self.input_index, self.output_index = int(inp["index"]), int(out["index"])
        signature = [int(v) for v in inp["shape_signature"]]
        self.fixed = None if signature[1] < 0 or signature[2] < 0 else (signature[1], signature[2])
        self.input_size = input_size
        # A shared interpreter is already allocated for its engine's shape; ours is allocated on first use.
        self.shape: tuple[int, int] | None = (int(inp["shape"][1]), int(inp["shape"][2])) if self.shared else None
        self._buffers: dict[tuple[int, int], Image] = {}

    def warm_up(self, h: int, w: int) -> None:
        """Allocate for the clip's shape and run once (the first invoke packs the weights)."""
        self.invoke(self.prepare(np.zeros((h, w, 3), np.uint8)).tensor)

    def prepare(self, image: Image) -> Prepared:
        """Scale the long side to input_size, BGR -> RGB, pad bottom/right to multiples of 32 (the detector's input)."""
        h, w = image.shape[:2]
        if self.fixed is not None:
            scale = min(self.fixed[0] / h, self.fixed[1] / w)
            in_h, in_w = self.fixed
        else:
            scale = self.input_size / max(h, w)
            in_h, in_w = _ceil32(h * scale), _ceil32(w * scale)
        rh, rw = min(in_h, max(1, round(h * scale))), min(in_w, max(1, round(w * scale)))
        resized = cv2.resize(image, (rw, rh), interpolation=cv2.INTER_AREA if rw < w else cv2.INTER_LINEAR)
        tensor = self._buffers.get((in_h, in_w))
        if tensor is None:
            tensor = self._buffers[(in_h, in_w)] = np.zeros((1, in_h, in_w, 3), np.uint8)
        tensor[0, :rh, :rw] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        tensor[0, rh:] = 0
        tensor[0, :rh, rw:] = 0
        return Prepared(tensor, h, w, rh, rw)

    def invoke(self, tensor: Image) -> Floats:
        """The bare runtime call; returns the (6, 56) rows."""
        shape = (int(tensor.shape[1]), int(tensor.shape[2]))
        if shape != self.shape:
            if self.shared:  # the detector's interpreter: resizing it behind its engine's back would break it
                raise RuntimeError(f"input {shape} differs from the detector's {self.shape}")
            if self.fixed is None:
                self.interp.resize_tensor_input(self.input_index, [1, *shape, 3], strict=True)
            self.interp.allocate_tensors()
            self.shape = shape
        self.interp.set_tensor(self.input_index, tensor)
        self.interp.invoke()
        return np.asarray(self.interp.get_tensor(self.output_index)[0], np.float32)

    def passes(self, image: Image, confidence: float, tile: TileMode, max_tiles: int) -> int:
        """What the detector's model does with one frame: the full pass, plus the tiles when saturated.

        Returns the number of passes. No decoding: this is the inference baseline."""
        rows = self.invoke(self.prepare(image).tensor)
        if tile == "off" or (tile == "auto" and not saturated(rows, confidence)):
            return 1
        boxes = tile_boxes(image.shape[1], image.shape[0], max_tiles)
        for x0, y0, x1, y1 in boxes:
            self.invoke(self.prepare(image[y0:y1, x0:x1]).tensor)
        return 1 + len(boxes)


def saturated(rows: Floats, confidence: float) -> bool:
    return len(rows) == MAX_PEOPLE and bool((rows[:, 55] >= SATURATED * confidence).all())


# --- the hand-written integration (direct): the same pre- and post-processing, vectorised, in line -----------------


@dataclass
class People:
    boxes: Floats  # n x 4: x1, y1, x2, y2 in frame pixels
    scores: Floats  # n
    keypoints: Floats  # n x 17 x 3: x, y, score
    cut: npt.NDArray[np.bool_]  # n: the box touches an inner tile edge

    @staticmethod
    def concat(parts: Sequence[People]) -> People:
        return People(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.scores for p in parts]),
            np.concatenate([p.keypoints for p in parts]),
            np.concatenate([p.cut for p in parts]),
        )


def decode(rows: Floats, prep: Prepared, confidence: float) -> People:
    """Rows scoring >= confidence, from the padded tensor's normalised coordinates to frame pixels."""
    in_h, in_w = prep.tensor.shape[1:3]
    fx, fy = in_w * prep.w / prep.rw, in_h * prep.h / prep.rh
    rows = rows[rows[:, 55] >= confidence]
    limit = np.array([prep.w, prep.h, prep.w, prep.h], np.float32)
    boxes = np.clip(rows[:, [52, 51, 54, 53]] * np.array([fx, fy, fx, fy], np.float32), 0, limit)
    valid = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    rows, boxes = rows[valid], boxes[valid]
    yxs = rows[:, :51].reshape(-1, 17, 3)
    keypoints = np.stack(
        [np.clip(yxs[:, :, 1] * fx, 0, prep.w), np.clip(yxs[:, :, 0] * fy, 0, prep.h), np.clip(yxs[:, :, 2], 0, 1)],
        axis=2,
    ).astype(np.float32)
    scores = np.clip(rows[:, 55], 0, 1).astype(np.float32)
    return People(boxes.astype(np.float32), scores, keypoints, np.zeros(len(rows), bool))


def nms(people: People) -> People:
    """Greedy NMS, whole boxes first by score; a cut box mostly inside a kept one is a fragment of it."""
    order = sorted(range(len(people.scores)), key=lambda i: (bool(people.cut[i]), -float(people.scores[i])))
    b = people.boxes
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    kept: list[int] = []
    for i in order:
        if kept:
            k = np.array(kept)
            iw = np.clip(np.minimum(b[k, 2], b[i, 2]) - np.maximum(b[k, 0], b[i, 0]), 0, None)
            ih = np.clip(np.minimum(b[k, 3], b[i, 3]) - np.maximum(b[k, 1], b[i, 1]), 0, None)
            inter = iw * ih
            iou = inter / np.maximum(area[k] + area[i] - inter, 1e-9)
            ios = inter / np.maximum(np.minimum(area[k], area[i]), 1e-9)
            if (iou > NMS_IOU).any() or (people.cut[i] and (ios > FRAGMENT_IOS).any()):
                continue
        kept.append(i)
    k = np.array(kept, int)
    return People(people.boxes[k], people.scores[k], people.keypoints[k], people.cut[k])


def direct(
    raw: RawMoveNet, image: Image, confidence: float, keypoint_confidence: float, tile: TileMode, max_tiles: int
) -> People:
    """What a hand-written MoveNet integration does per frame, with the detector's tiling rule."""
    prep = raw.prepare(image)
    rows = raw.invoke(prep.tensor)
    found = decode(rows, prep, confidence)
    if tile == "always" or (tile == "auto" and saturated(rows, confidence)):
        h, w = image.shape[:2]
        parts = [found]
        for x0, y0, x1, y1 in tile_boxes(w, h, max_tiles):
            tprep = raw.prepare(image[y0:y1, x0:x1])
            part = decode(raw.invoke(tprep.tensor), tprep, confidence)
            part.boxes[:, [0, 2]] += x0
            part.boxes[:, [1, 3]] += y0
            part.keypoints[:, :, 0] += x0
            part.keypoints[:, :, 1] += y0
            pb = part.boxes
            part.cut = (
                ((x0 > 0) & (pb[:, 0] <= x0 + EDGE_PX))
                | ((x1 < w) & (pb[:, 2] >= x1 - EDGE_PX))
                | ((y0 > 0) & (pb[:, 1] <= y0 + EDGE_PX))
                | ((y1 < h) & (pb[:, 3] >= y1 - EDGE_PX))
            )
            parts.append(part)
        found = nms(People.concat(parts))
    found.keypoints[:, :, 2][found.keypoints[:, :, 2] < keypoint_confidence] = 0.0
    return found


# --- the pipeline: raw decode + inference against campusguard replay ----------------------------------------------


@dataclass
class PipelineRun:
    kind: str
    detect_fps: float
    decoded: int
    processed: int  # frames through the pipeline (raw: frames inferred)
    detected: int | None  # frames that went to the detector (gate runs: from the event log; else = processed)
    seconds: float
    fps: float
    passes: int | None = None  # model passes (raw only)
    others_cpus: float | None = None  # CPUs other processes kept busy during the run (campusguard: start-up included)
    decode_ms: float | None = None  # raw only: per processed frame, decoding (skipped frames included) and BGR
    inference_ms: float | None = None  # raw only: per processed frame, the model passes with their pre-processing


def raw_pipeline(raw: RawMoveNet, detect_fps: float, cfg: MoveNetConfig) -> PipelineRun:
    """PyAV decode, the replay's frame selection and BGR conversion, then the detector's model passes."""
    cap = RateCap(detect_fps)
    decoded = processed = passes = 0
    inference = 0.0
    cpu = cpu_seconds()
    start = time.monotonic()  # like Replay.run: opening the file is inside the clock
    with av.open(str(CLIP)) as container:
        stream = container.streams.video[0]
        size = scaled_size(stream.codec_context.width, stream.codec_context.height, DETECT_WIDTH)
        for index, frame in enumerate(container.decode(stream)):
            decoded += 1
            at = float(frame.time) if frame.time is not None else index / float(stream.average_rate or 10)
            if not cap.admit(at):
                continue
            image: Image = frame.to_ndarray(width=size[0], height=size[1], format="bgr24")  # type: ignore[assignment]
            infer_start = time.perf_counter()
            passes += raw.passes(image, cfg.confidence, cfg.tile, cfg.max_tiles)
            inference += time.perf_counter() - infer_start
            processed += 1
    seconds = time.monotonic() - start
    others = others_cores(cpu, cpu_seconds(), seconds)
    per = 1000 / max(processed, 1)
    return PipelineRun(
        RAW, detect_fps, decoded, processed, processed, seconds, processed / seconds, passes, others,
        decode_ms=(seconds - inference) * per, inference_ms=inference * per,
    )  # fmt: skip


def config_text(detect_fps: float, motion: str, threads: int, tile: TileMode) -> str:
    clip = json.dumps(str(CLIP))
    return f"""
[core]
site = "bench"
log_level = "WARNING"

[detection]
second_look = false   # extra passes the raw baseline does not make: compare the same work

[cameras.{CAMERA}]
type = "file"
path = {clip}
realtime = false
loop = false
detect_fps = {detect_fps}
detect_width = {DETECT_WIDTH}
motion.mode = "{motion}"
tamper.enabled = false

[cameras.{CAMERA}.zones.plaza]
polygon = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]

[detectors.people]
type = "movenet"
threads = {threads}
tile = "{tile}"

[trackers.main]
type = "bytetrack"

[analyzers.loitering]
type = "loitering"
camera = "{CAMERA}"
zone = "plaza"
seconds = 10

[analyzers.falls]
type = "fall"

[analyzers.fights]
type = "fight"
"""


def campusguard_pipeline(detect_fps: float, motion: str, threads: int, tile: TileMode, work: Path) -> PipelineRun:
    """``campusguard replay`` in this process: its own summary's frames/s (the decode loop only, not start-up)."""
    text = config_text(detect_fps, motion, threads, tile)
    config = parse_config_text(text, display="bench.toml", base_dir=work, defer=True)
    # The gated run writes the event log to count the frames that went to detection (~20 us a frame).
    events = work / "events.jsonl" if motion == "gate" else None
    cpu, start = cpu_seconds(), time.monotonic()
    summary = asyncio.run(replay(config, CLIP, camera=CAMERA, out=events, annotate=None))
    others = others_cores(cpu, cpu_seconds(), time.monotonic() - start)
    detected: int | None = summary.processed
    if events is not None:
        lines = (json.loads(line) for line in events.read_text().splitlines())
        detected = sum(1 for e in lines if e["type"] == "frame" and e["detected"])
    kind = ALWAYS if motion == "always" else GATE
    return PipelineRun(
        kind, detect_fps, summary.frames, summary.processed, detected, summary.seconds, summary.fps, None, others
    )


@dataclass
class PipelineCase:
    detect_fps: float
    runs: dict[str, list[PipelineRun]] = field(default_factory=lambda: {k: [] for k in PIPELINE_KINDS})

    def median_fps(self, kind: str) -> float:
        return statistics.median(r.fps for r in self.runs[kind])

    @property
    def round_ratios(self) -> list[float]:
        """campusguard always / raw per round: the two ran back to back, so load drift mostly cancels."""
        return [a.fps / r.fps for a, r in zip(self.runs[ALWAYS], self.runs[RAW], strict=True)]

    @property
    def ratio(self) -> float:
        """The goal's number: the median of the per-round ratios."""
        return statistics.median(self.round_ratios)

    @property
    def quiet_ratio(self) -> float | None:
        """The median over the rounds where other processes stayed under QUIET_CPUS in both runs."""
        quiet = [
            a.fps / r.fps
            for a, r in zip(self.runs[ALWAYS], self.runs[RAW], strict=True)
            if max(a.others_cpus or 0.0, r.others_cpus or 0.0) < QUIET_CPUS
        ]
        return statistics.median(quiet) if quiet else None


def run_pipeline(rates: Sequence[float], rounds: int, threads: int, tile: TileMode) -> list[PipelineCase]:
    path = model_path("movenet")
    if path is None:
        raise SystemExit("MoveNet is not installed: run `campusguard models install movenet`")
    cfg = MoveNetConfig(threads=threads, tile=tile)
    raw = RawMoveNet(path, cfg.input_size, cfg.threads)
    raw.warm_up(480, 640)
    cases = [PipelineCase(fps) for fps in rates]
    with tempfile.TemporaryDirectory(prefix="pipeline_replay-") as tmp:
        work = Path(tmp)
        # Untimed warm-up: imports the plugins, fills the page cache with the clip and the model.
        campusguard_pipeline(rates[-1], "always", threads, tile, work)
        raw_pipeline(raw, rates[-1], cfg)
        for r in range(rounds):
            for case in cases:
                # raw and always back to back, taking turns at going first; the gate (not the goal) after.
                order = [RAW, ALWAYS, GATE] if r % 2 == 0 else [ALWAYS, RAW, GATE]
                for kind in order:
                    gc.collect()
                    if kind == RAW:
                        run = raw_pipeline(raw, case.detect_fps, cfg)
                    else:
                        run = campusguard_pipeline(case.detect_fps, kind.split()[-1], threads, tile, work)
                    case.runs[kind].append(run)
                print(
                    f"  round {r + 1}/{rounds}, detect_fps {case.detect_fps:g}: "
                    + ", ".join(f"{k} {case.runs[k][-1].fps:.1f}" for k in PIPELINE_KINDS)
                    + " frames/s",
                    file=sys.stderr,
                )
    return cases


# --- detector overhead: the same frames, call by call --------------------------------------------------------------


def clip_frames(step: int) -> list[Image]:
    """Every ``step``-th frame of the clip, decoded as the replay does (bgr24 at detect_width)."""
    images: list[Image] = []
    with av.open(str(CLIP)) as container:
        stream = container.streams.video[0]
        size = scaled_size(stream.codec_context.width, stream.codec_context.height, DETECT_WIDTH)
        for index, frame in enumerate(container.decode(stream)):
            if index % step == 0:
                images.append(frame.to_ndarray(width=size[0], height=size[1], format="bgr24"))  # type: ignore[arg-type]
    return images


def _ms(call: Callable[[], object]) -> float:
    start = time.perf_counter_ns()
    call()
    return (time.perf_counter_ns() - start) / 1e6


async def measure_calls(images: list[Image], rounds: int, calls: int, threads: int, tile: TileMode) -> dict[str, Any]:
    cfg = MoveNetConfig(threads=threads, tile=tile)
    with tempfile.TemporaryDirectory(prefix="pipeline_replay-") as tmp:
        detector = MoveNetDetector("bench", cfg, make_context("bench", Path(tmp)))
        await detector.start()
        try:
            return await _measure_calls(detector, cfg, images, rounds, calls)
        finally:
            await detector.stop()


async def _measure_calls(
    detector: MoveNetDetector, cfg: MoveNetConfig, images: list[Image], rounds: int, calls: int
) -> dict[str, Any]:
    engine: Any = detector._engine
    # The detector's own interpreter for every kind: one copy of the weights and one thread pool, so
    # that no kind gains from another warming its caches. Called from this thread while the
    # detector's worker is idle (every call is awaited), so never two at once.
    raw = RawMoveNet(engine.path, cfg.input_size, cfg.threads, interpreter=engine._interp)
    frames = [
        Frame(camera_id="bench", sequence=i, width=img.shape[1], height=img.shape[0], image=img)
        for i, img in enumerate(images)
    ]
    # The invoke kind runs on tensors prepared beforehand: as many as the detector's passes on that frame.
    tensors: list[list[Image]] = []
    for img in images:
        full = raw.prepare(img).tensor.copy()
        rows = raw.invoke(full)
        extra = []
        if cfg.tile == "always" or (cfg.tile == "auto" and saturated(rows, cfg.confidence)):
            boxes = tile_boxes(img.shape[1], img.shape[0], cfg.max_tiles)
            extra = [raw.prepare(img[y0:y1, x0:x1]).tensor.copy() for x0, y0, x1, y1 in boxes]
        tensors.append([full, *extra])

    def invoke(i: int) -> object:
        return [raw.invoke(t) for t in tensors[i]]

    def direct_call(i: int) -> People:
        return direct(raw, images[i], cfg.confidence, cfg.keypoint_confidence, cfg.tile, cfg.max_tiles)

    def engine_call(i: int) -> object:
        return engine.detect(images[i], cfg.confidence, tile=cfg.tile, max_tiles=cfg.max_tiles)

    async def campusguard(i: int) -> float:
        start = time.perf_counter_ns()
        await detector.detect([frames[i]])
        return (time.perf_counter_ns() - start) / 1e6

    # Same people from both integrations, or the comparison is void.
    agree = 0
    for i, frame in enumerate(frames):
        ours, theirs = direct_call(i), (await detector.detect([frame]))[0]
        agree += len(ours.scores) == len(theirs) and bool(
            np.allclose(sorted(ours.scores), sorted(d.score for d in theirs), atol=1e-5)
        )
    loop = asyncio.get_running_loop()

    async def in_worker(fn: Callable[[int], object], i: int) -> float:
        """``fn(i)`` timed inside the detector's worker thread: the interpreter's own thread."""
        return await loop.run_in_executor(detector._executor, lambda: _ms(lambda: fn(i)))

    for i in range(min(len(frames), 10)):  # warm caches and the worker thread
        await in_worker(invoke, i), await in_worker(direct_call, i), await in_worker(engine_call, i)
        await campusguard(i), direct_call(i)

    samples: dict[str, list[list[float]]] = {k: [] for k in CALL_KINDS}
    others: list[float | None] = []
    for _ in range(rounds):
        per: dict[str, list[float]] = {k: [] for k in CALL_KINDS}
        cpu, start = cpu_seconds(), time.monotonic()
        for c in range(calls):
            i = c % len(frames)
            shift = c % len(CALL_KINDS)
            order = CALL_KINDS[shift:] + CALL_KINDS[:shift]
            for kind in order:
                if kind == "campusguard":
                    per[kind].append(await campusguard(i))
                elif kind == "direct_main":
                    per[kind].append(_ms(lambda i=i: direct_call(i)))  # type: ignore[misc]
                else:
                    fn = {"invoke": invoke, "direct": direct_call, "engine": engine_call}[kind]
                    per[kind].append(await in_worker(fn, i))
        others.append(others_cores(cpu, cpu_seconds(), time.monotonic() - start))
        for kind, values in per.items():
            samples[kind].append(values)
    quiet = [r for r, o in enumerate(others) if o is not None and o < QUIET_CPUS]

    def paired(a: str, b: str, only: Sequence[int] | None = None) -> float:
        """Median of a/b call by call: neighbours in time, so the machine's load drifts out of the ratio."""
        picked = range(rounds) if only is None else only
        flat = [x / y for r in picked for x, y in zip(samples[a][r], samples[b][r], strict=True)]
        return statistics.median(flat)

    return {
        "frames": len(frames),
        "tiled_frames": sum(len(t) > 1 for t in tensors),
        "direct_agrees_with_detector": f"{agree}/{len(frames)}",
        "median_ms": {k: statistics.median(v for r in s for v in r) for k, s in samples.items()},
        "ratio_direct_over_campusguard": paired("direct", "campusguard"),
        "ratio_direct_over_campusguard_quiet": paired("direct", "campusguard", quiet) if quiet else None,
        "round_others_cpus": others,
        "ratio_invoke_over_campusguard": paired("invoke", "campusguard"),
        "ratio_engine_over_campusguard": paired("engine", "campusguard"),
        "ratio_direct_main_over_campusguard": paired("direct_main", "campusguard"),
        "ratio_invoke_over_direct": paired("invoke", "direct"),
        "round_ratios_direct_over_campusguard": [
            statistics.median(x / y for x, y in zip(d, c, strict=True))
            for d, c in zip(samples["direct"], samples["campusguard"], strict=True)
        ],
        "samples_ms": samples,
    }


# --- report --------------------------------------------------------------------------------------------------------


def print_pipeline(cases: list[PipelineCase], tile: TileMode) -> None:
    print(f"\nPipeline: {CLIP.name} at width {DETECT_WIDTH}, MoveNet tile = {tile!r}; frames/s, median (min-max)")
    print("  campusguard always: motion.mode = 'always', every selected frame goes to detection (the goal's number)")
    print("  campusguard gate:   the default motion gate; still frames skip detection (not comparable, shown apart)\n")
    print(
        f"{'detect_fps':>10} {'kind':<20} {'frames':>7} {'detected':>9} {'frames/s':>9} {'min':>7} {'max':>7} "
        f"{'ms/frame':>9}  others' CPUs by round"
    )
    for case in cases:
        for kind in PIPELINE_KINDS:
            runs = case.runs[kind]
            fps = [r.fps for r in runs]
            detected = runs[-1].detected if runs[-1].detected is not None else "-"
            others = " ".join("?" if r.others_cpus is None else f"{r.others_cpus:.2f}" for r in runs)
            print(
                f"{case.detect_fps:>10g} {kind:<20} {runs[-1].processed:>7} {detected!s:>9} "
                f"{statistics.median(fps):>9.1f} {min(fps):>7.1f} {max(fps):>7.1f} "
                f"{1000 / statistics.median(fps):>9.2f}  {others}"
            )
        raws = case.runs[RAW]
        decode = statistics.median(r.decode_ms or 0.0 for r in raws)
        inference = statistics.median(r.inference_ms or 0.0 for r in raws)
        quiet = "none" if case.quiet_ratio is None else f"{case.quiet_ratio:.3f}"
        print(
            f"{'':>10} always/raw: median of rounds {case.ratio:.3f} ("
            + ", ".join(f"{v:.3f}" for v in case.round_ratios)
            + f"), of quiet rounds {quiet}, ratio of medians {case.median_fps(ALWAYS) / case.median_fps(RAW):.3f}; "
            f"gate/raw {case.median_fps(GATE) / case.median_fps(RAW):.2f}\n"
            f"{'':>10} raw per frame: decode {decode:.2f} ms + model {inference:.2f} ms; "
            f"{raws[-1].passes} model passes for {raws[-1].processed} frames"
        )


def print_calls(calls: dict[str, Any]) -> None:
    ms = calls["median_ms"]
    print(
        f"\nDetector overhead: MoveNet, {calls['frames']} frames of the clip ({calls['tiled_frames']} saturated: "
        f"tiled), the detector's interpreter; direct and detector found the same people on "
        f"{calls['direct_agrees_with_detector']} frames"
    )
    print(f"{'kind':<13} {'ms/call':>8} {'ratio to campusguard':>21}  what")
    what = {
        "invoke": "set_tensor/invoke/get_tensor on prepared tensors (the floor), in the interpreter's thread",
        "direct": "resize+pad+invoke+decode (+tiles, NMS), vectorised, in the interpreter's thread: the baseline",
        "engine": "campusguard's MoveNetEngine.detect in the interpreter's thread (no hop, no Detection objects)",
        "campusguard": "await MoveNetDetector.detect([frame]) from the event loop",
        "direct_main": "direct, called from the main thread (the interpreter changes threads every call)",
    }
    ratios = {
        "invoke": calls["ratio_invoke_over_campusguard"],
        "direct": calls["ratio_direct_over_campusguard"],
        "engine": calls["ratio_engine_over_campusguard"],
        "campusguard": 1.0,
        "direct_main": calls["ratio_direct_main_over_campusguard"],
    }
    for kind in CALL_KINDS:
        print(f"{kind:<13} {ms[kind]:>8.2f} {ratios[kind]:>21.3f}  {what[kind]}")
    rounds = ", ".join(
        f"{v:.3f}" + ("" if o is None else f" ({o:.2f})")
        for v, o in zip(calls["round_ratios_direct_over_campusguard"], calls["round_others_cpus"], strict=True)
    )
    print(f"direct/campusguard by round (others' CPUs meanwhile): {rounds}")


def judged(quiet: float | None, every: float) -> tuple[float, str]:
    """The ratio a goal is judged on: quiet rounds' when there are any (load from other processes slows the model
    and campusguard differently), else every round's, marked as such."""
    return (quiet, "quiet rounds") if quiet is not None else (every, "all rounds: none was quiet, noisy")


def verdicts(cases: list[PipelineCase], calls: dict[str, Any]) -> tuple[bool, bool]:
    parts, ok_pipeline = [], True
    for case in cases:
        ratio, basis = judged(case.quiet_ratio, case.ratio)
        ok_pipeline &= ratio >= GOAL_PIPELINE
        parts.append(f"detect_fps {case.detect_fps:g}: {ratio:.3f} ({basis})")
    print(f"\npipeline replay/raw, {'; '.join(parts)}; goal >= {GOAL_PIPELINE} at every rate: ", end="")
    print("PASS" if ok_pipeline else "FAIL")
    ratio, basis = judged(calls["ratio_direct_over_campusguard_quiet"], calls["ratio_direct_over_campusguard"])
    ok_detector = ratio >= GOAL_DETECTOR
    verdict = "PASS" if ok_detector else "FAIL"
    print(f"detector overhead direct/campusguard {ratio:.3f} ({basis}); goal >= {GOAL_DETECTOR}: {verdict}")
    return ok_pipeline, ok_detector


@contextlib.contextmanager
def stage_clocks(totals: dict[str, float]) -> Iterator[None]:
    """Time campusguard's stages (seconds summed into ``totals``) by wrapping methods on their classes; undone on exit.

    Only for ``--profile``: the wrappers cost a few microseconds a call."""
    from campusguard.core import replay as replay_module
    from campusguard.core.pipeline.motion import MotionGate
    from campusguard.core.pipeline.processor import FrameProcessor
    from campusguard.detectors._movenet_pose import MoveNetEngine
    from campusguard.plugins.trackers.bytetrack import ByteTrack

    saved: list[tuple[type, str, Any]] = []

    def add(key: str, since: float) -> None:
        totals[key] = totals.get(key, 0.0) + time.perf_counter() - since

    def wrap(owner: type, name: str, key: str) -> None:
        original = owner.__dict__[name]
        saved.append((owner, name, original))
        if inspect.iscoroutinefunction(original):

            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                since = time.perf_counter()
                try:
                    return await original(*args, **kwargs)
                finally:
                    add(key, since)

            setattr(owner, name, timed_async)
        else:

            def timed_sync(*args: Any, **kwargs: Any) -> Any:
                since = time.perf_counter()
                try:
                    return original(*args, **kwargs)
                finally:
                    add(key, since)

            setattr(owner, name, timed_sync)

    frames = replay_module.Replay.__dict__["frames"]

    def timed_frames(self: Any) -> Iterator[Any]:
        source = frames(self)
        while True:
            since = time.perf_counter()
            item = next(source, None)
            add("decode: Replay.frames, in its thread", since)
            if item is None:
                return
            yield item

    saved.append((replay_module.Replay, "frames", frames))
    replay_module.Replay.frames = timed_frames  # type: ignore[method-assign]
    wrap(MotionGate, "update", "motion gate")
    wrap(FrameProcessor, "process", "FrameProcessor.process")
    wrap(MoveNetDetector, "detect", "  await detector.detect (thread hop)")
    wrap(MoveNetDetector, "_detect_all", "    worker: _detect_all (+ Detection objects)")
    wrap(MoveNetEngine, "detect", "      worker: MoveNetEngine.detect (model passes)")
    wrap(FrameProcessor, "_track_and_analyze", "  _track_and_analyze")
    wrap(ByteTrack, "update", "    ByteTrack.update")
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def profile_replay(detect_fps: float, threads: int, tile: TileMode, rounds: int) -> dict[str, Any]:
    """Where a replay's time goes: stage clocks (every thread), then cProfile (the event loop's thread only)."""
    path = model_path("movenet")
    assert path is not None
    cfg = MoveNetConfig(threads=threads, tile=tile)
    raw = RawMoveNet(path, cfg.input_size, cfg.threads)
    raw.warm_up(480, 640)
    stages: list[dict[str, float]] = []
    bases: list[PipelineRun] = []
    with tempfile.TemporaryDirectory(prefix="pipeline_replay-") as tmp:
        campusguard_pipeline(detect_fps, "always", threads, tile, Path(tmp))  # warm-up: imports
        for r in range(rounds):
            for kind in (RAW, ALWAYS) if r % 2 == 0 else (ALWAYS, RAW):
                if kind == RAW:
                    bases.append(raw_pipeline(raw, detect_fps, cfg))
                    continue
                totals: dict[str, float] = {}
                with stage_clocks(totals):
                    run = campusguard_pipeline(detect_fps, "always", threads, tile, Path(tmp))
                per = {k: v * 1000 / run.processed for k, v in totals.items()}
                per["replay loop"] = 1000 / run.fps
                per["replay loop, rest: to_thread hop, Frame, record"] = (
                    per["replay loop"]
                    - per["FrameProcessor.process"]
                    - per["motion gate"]
                    - per["decode: Replay.frames, in its thread"]
                )
                per["    analyzers (+ gather, wait_for)"] = per["  _track_and_analyze"] - per["    ByteTrack.update"]
                stages.append(per)
        profiler = cProfile.Profile()
        profiler.enable()
        profiled = campusguard_pipeline(detect_fps, "always", threads, tile, Path(tmp))
        profiler.disable()
    per = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
    raw_ms = statistics.median(1000 / b.fps for b in bases)
    raw_decode = statistics.median(b.decode_ms or 0.0 for b in bases)
    raw_model = statistics.median(b.inference_ms or 0.0 for b in bases)
    print(
        f"\nWhere the time goes, detect_fps {detect_fps:g}, motion 'always' (stage clocks, medians of {rounds} runs "
        f"each): replay {per['replay loop']:.2f} ms/frame, raw {raw_ms:.2f} ms/frame (decode {raw_decode:.2f} + "
        f"model {raw_model:.2f})"
    )
    order = [
        "decode: Replay.frames, in its thread",
        "replay loop, rest: to_thread hop, Frame, record",
        "motion gate",
        "FrameProcessor.process",
        "  await detector.detect (thread hop)",
        "    worker: _detect_all (+ Detection objects)",
        "      worker: MoveNetEngine.detect (model passes)",
        "  _track_and_analyze",
        "    ByteTrack.update",
        "    analyzers (+ gather, wait_for)",
    ]
    for key in order:
        print(f"  {key:<52} {per.get(key, 0.0):>7.2f} ms/frame")
    profiler.dump_stats(PROFILE)
    print(f"\ncProfile of one replay ({profiled.fps:.1f} frames/s under the profiler), event-loop thread, by own time:")
    pstats.Stats(profiler, stream=sys.stdout).sort_stats("tottime").print_stats(15)
    print(f"profile: {PROFILE}", file=sys.stderr)
    return {"replay_ms_per_frame": per, "raw": [asdict(b) for b in bases], "stage_runs": stages}


def cpu_seconds() -> tuple[float, float] | None:
    """(CPU seconds the whole machine has been busy, CPU seconds of this process) from /proc/stat (Linux)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal
    busy = sum(ticks) - ticks[3] - ticks[4]
    own = os.times()
    return busy / os.sysconf("SC_CLK_TCK"), own.user + own.system


def others_cores(before: tuple[float, float] | None, after: tuple[float, float] | None, seconds: float) -> float | None:
    """Average CPUs other processes kept busy meanwhile: the machine's busy time less this process's."""
    if before is None or after is None or seconds <= 0:
        return None
    return max(0.0, ((after[0] - before[0]) - (after[1] - before[1])) / seconds)


def environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "av": version("av"),
        "ai_edge_litert": version("ai-edge-litert"),
        "opencv": cv2.__version__,
        "numpy": np.__version__,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="pipeline rounds and call rounds; medians are reported")
    parser.add_argument("--rates", type=float, nargs="+", default=[10.0, 5.0], help="detect_fps values (clip: 10)")
    parser.add_argument("--calls", type=int, default=60, help="detector calls of each kind per round")
    parser.add_argument("--frame-step", type=int, default=10, help="detector overhead: every Nth frame of the clip")
    parser.add_argument("--threads", type=int, default=2, help="LiteRT threads (the detector's default)")
    parser.add_argument("--tile", choices=["auto", "always", "off"], default="auto", help="the detector's tiling")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, detect_fps 5 only, 12 calls")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--profile", action="store_true", help="also cProfile one replay (bench/results/*.prof)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.rates, args.calls, args.frame_step = 1, [5.0], 12, 25
    if not CLIP.is_file():
        print(f"{CLIP}: the sample clip is missing (see ../shared/data/README.md)", file=sys.stderr)
        return 1

    load_start = os.getloadavg()
    cpu_start = cpu_seconds()
    started = time.monotonic()
    cases = run_pipeline(args.rates, args.rounds, args.threads, args.tile)
    images = clip_frames(args.frame_step)
    calls = asyncio.run(measure_calls(images, args.rounds, args.calls, args.threads, args.tile))
    load_end = os.getloadavg()
    elapsed = time.monotonic() - started
    others = others_cores(cpu_start, cpu_seconds(), elapsed)

    print_pipeline(cases, args.tile)
    print_calls(calls)
    env = environment()
    others_text = "unknown" if others is None else f"{others:.2f} CPUs"
    print(
        f"\npython {env['python']}, {env['cpus']} CPUs, PyAV {env['av']}, ai-edge-litert {env['ai_edge_litert']}, "
        f"{args.threads} LiteRT threads; {elapsed:.0f} s\n"
        f"load average (1 min) at start {load_start[0]:.2f}, at end {load_end[0]:.2f} (the end includes this "
        f"benchmark's own ~2 busy threads); other processes used {others_text} on average during the run"
    )
    if load_start[0] > LOAD_WARNING:
        print(
            f"WARNING: load average {load_start[0]:.2f} at start, above {LOAD_WARNING} on a {env['cpus']}-CPU "
            "machine: other work competed for the CPUs; absolute numbers are low and the ratios noisier"
        )
    if load_end[0] > LOAD_WARNING:
        if others is not None and others < QUIET_CPUS:
            print(f"note: load average {load_end[0]:.2f} at end, above {LOAD_WARNING}: this benchmark's own threads")
        else:
            print(
                f"WARNING: load average {load_end[0]:.2f} at end, above {LOAD_WARNING}, and other processes used "
                f"{others_text}: rounds with others above {QUIET_CPUS} CPUs are left out of the verdicts when any "
                "round was quiet; rerun on a quiet machine otherwise"
            )
    ok_pipeline, ok_detector = verdicts(cases, calls)
    profile = profile_replay(args.rates[0], args.threads, args.tile, args.rounds) if args.profile else None

    payload = {
        **env,
        "clip": str(CLIP),
        "threads": args.threads,
        "tile": args.tile,
        "rounds": args.rounds,
        "load_average": {"start": load_start, "end": load_end},
        "other_processes_cpus": others,
        "seconds": elapsed,
        "goals": {"pipeline_ratio": GOAL_PIPELINE, "detector_ratio": GOAL_DETECTOR},
        "pipeline": [
            {
                "detect_fps": c.detect_fps,
                "median_fps": {k: c.median_fps(k) for k in PIPELINE_KINDS},
                "ratio_always_over_raw": c.ratio,
                "ratio_quiet_rounds": c.quiet_ratio,
                "ratio_of_medians": c.median_fps(ALWAYS) / c.median_fps(RAW),
                "round_ratios": c.round_ratios,
                "runs": {k: [asdict(r) for r in runs] for k, runs in c.runs.items()},
            }
            for c in cases
        ],
        "detector_overhead": calls,
        "profile": profile,
        "pass": {"pipeline": ok_pipeline, "detector": ok_detector},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()
    print(f"results: {RESULTS}", file=sys.stderr)
    return 1 if args.check and not (ok_pipeline and ok_detector) else 0


if __name__ == "__main__":
    sys.exit(main())
