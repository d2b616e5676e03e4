"""Camera ingest: campusguard's RTSP path against raw PyAV decoding, and how many cameras one machine sustains.

Goals:

- ingest: N RTSP cameras (default 4) delivered by campusguard (decode, rate cap, downscale, motion
  gate, tamper check, the ``frames`` bus topic) at >= 0.9 times the frames per second of raw PyAV
  decoding the same streams in the same run (the same rate cap and downscale, nothing else);
- scale: >= 16 cameras of 640x360 at 15 fps sustained at the default detect_fps of 5 with motion
  gating, with no growing lag.

The streams come from gst-rtsp-server (tests/peers/rtsp_server.py) serving one pre-encoded H.264
file under /file0 ... /fileN-1, paced in real time: no encoder runs, so the server barely touches
the CPU being measured (its CPU is reported on its own). Every measurement runs in a fresh child
process, so CPU and memory belong to that run alone; the parent starts the server, the children,
and samples the server's and the machine's CPU over each child's measuring window.

    .venv/bin/python bench/camera_ingest.py [--cameras N] [--max-cameras N] [--quick] [--check]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from peers.rtsp import RtspServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "camera_ingest.json"
WIDTH, HEIGHT, STREAM_FPS = 640, 360, 15
GOAL_RATIO = 0.9
GOAL_CAMERAS = 16
SCALE_DETECT_FPS = 5.0  # campusguard's default detect_fps
KEEP_UP = 0.9  # a camera keeps up when it delivers >= 90 % of detect_fps and decodes >= 90 % of the stream
LATENCY_CEILING_S = 1.0  # capture-to-subscriber latency above this (last third's median) is lag
LATENCY_GROWTH = 2.0  # ... and so is a last third's median above this times the first third's,
LATENCY_SLACK_S = 0.05  # plus this: on 2 busy cores, ms-scale medians double from scheduling alone
OTHER_LOAD_PCT = 20.0  # CPU (% of one core) of other processes above which the report warns
CLK_TCK = os.sysconf("SC_CLK_TCK")
# The options campusguard's RTSP source opens streams with (plugins/cameras/rtsp.py), for the baseline.
RTSP_OPTIONS = {"rtsp_transport": "tcp", "allowed_media_types": "video", "analyzeduration": "1000000",
                "probesize": "500000"}  # fmt: skip


# --- the streams ---------------------------------------------------------------------------------


def ensure_clip(seconds: int) -> Path:
    """A 640x360 15 fps H.264 clip with motion, encoded once and cached beside the results.

    testsrc2 moves (sweeping bars, a counter) so the motion gate finds regions; a key frame every
    second and no B-frames, like an IP camera's main stream.
    """
    clip = RESULTS.parent / f"camera_ingest_{WIDTH}x{HEIGHT}_{STREAM_FPS}fps_{seconds}s.mp4"
    if clip.exists():
        return clip
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is needed once to encode the test clip (apt-get install ffmpeg)")
    clip.parent.mkdir(parents=True, exist_ok=True)
    partial = clip.with_suffix(".partial.mp4")
    source = f"testsrc2=size={WIDTH}x{HEIGHT}:rate={STREAM_FPS}"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source,
         "-t", str(seconds), "-c:v", "libx264", "-preset", "veryfast", "-g", str(STREAM_FPS), "-bf", "0",
         "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(partial)],
        check=True,
    )  # fmt: skip
    partial.rename(clip)  # only a complete clip is ever cached
    return clip


@contextlib.contextmanager
def rtsp_server(clip: Path, mounts: int) -> Iterator[RtspServer]:
    sys.path.insert(0, str(ROOT / "tests"))  # the peer lives with the tests
    from peers.rtsp import RtspServer

    server = RtspServer(file=clip, file_mounts=mounts)
    try:
        yield server.start()
    finally:
        server.stop()


def camera_urls(server: RtspServer, count: int) -> list[str]:
    return [server.url(f"file{i}") for i in range(count)]


# --- CPU and memory ------------------------------------------------------------------------------


def process_cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds of a whole process (every thread) from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine, all cores, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


def thread_cpu_s() -> dict[int, tuple[str, float]]:
    """CPU seconds per thread of this process, keyed by thread id, with a group name.

    Python names its threads ("decoder:cam3", "camera:cam3_0", "MainThread" runs the event loop);
    threads Python did not start (FFmpeg's own) are "native".
    """
    names = {t.native_id: t.name for t in threading.enumerate()}
    threads: dict[int, tuple[str, float]] = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # it may exit meanwhile
            tid = int(task.name)
            threads[tid] = (thread_group(names.get(tid, "native")), process_cpu_s(f"self/task/{tid}"))
    return threads


def thread_group(name: str) -> str:
    head = name.split(":", 1)[0]
    return head.split("_", 1)[0] if head.startswith("asyncio_") else head


def thread_deltas(start: dict[int, tuple[str, float]], end: dict[int, tuple[str, float]]) -> dict[str, float]:
    groups: defaultdict[str, float] = defaultdict(float)
    for tid, (group, cpu) in end.items():
        groups[group] += cpu - start.get(tid, (group, 0.0))[1]
    return dict(groups)


# --- the worker: one measurement in a child process ----------------------------------------------


@dataclass
class WorkerSpec:
    mode: str  # "raw" or "campusguard"
    urls: list[str]
    detect_fps: float
    warmup: float
    duration: float


class CameraLog:
    """One camera's frames as its consumer got them, and its decoder's frame count."""

    def __init__(self) -> None:
        self.decoded = 0
        self.error: str | None = None  # why a raw decoder thread ended early
        self.frames: list[tuple[float, float]] = []  # (captured, arrived), time.monotonic()

    def arrived(self, captured: float) -> None:
        self.frames.append((captured, time.monotonic()))


@dataclass
class CameraResult:
    name: str
    delivered_fps: float
    decoded_fps: float
    dropped: int
    p50_ms: float
    p99_ms: float
    first_third_ms: float
    last_third_ms: float


@dataclass
class Mark:
    """The counters at one edge of the measuring window."""

    at: float
    cpu_s: float
    threads: dict[int, tuple[str, float]]
    decoded: dict[str, int]
    dropped: dict[str, int]


Counters = Callable[[], tuple[dict[str, int], dict[str, int]]]  # decoded and dropped per camera


def mark(counters: Counters) -> Mark:
    decoded, dropped = counters()
    return Mark(time.monotonic(), process_cpu_s(), thread_cpu_s(), decoded, dropped)


def emit(line: str) -> None:
    print(line, flush=True)  # the parent samples the server's CPU when it reads this


async def measure(spec: WorkerSpec, logs: dict[str, CameraLog], counters: Counters, idle_mb: float) -> dict[str, Any]:
    """Warm up, then count over the window; what happens before the window never counts."""
    await asyncio.sleep(spec.warmup)
    start = mark(counters)
    emit("WINDOW START")
    await asyncio.sleep(spec.duration)
    end = mark(counters)
    emit("WINDOW END")
    wall = end.at - start.at
    cameras = [summarise(name, log, start, end) for name, log in logs.items()]
    delivered = sum(c.delivered_fps for c in cameras) * wall
    return {
        "wall_s": wall,
        "cpu_pct": 100 * (end.cpu_s - start.cpu_s) / wall,
        "cpu_ms_per_frame": 1000 * (end.cpu_s - start.cpu_s) / delivered if delivered else math.nan,
        "threads_cpu_pct": {k: 100 * v / wall for k, v in sorted(thread_deltas(start.threads, end.threads).items())},
        "rss_idle_mb": idle_mb,
        "rss_mb": rss_mb(),
        "cameras": [asdict(c) for c in cameras],
    }


def summarise(name: str, log: CameraLog, start: Mark, end: Mark) -> CameraResult:
    wall = end.at - start.at
    inside = sorted((arrived, arrived - captured) for captured, arrived in log.frames if start.at <= arrived < end.at)
    latencies = sorted(latency for _, latency in inside)

    def third_median(index: int) -> float:
        low, high = start.at + index * wall / 3, start.at + (index + 1) * wall / 3
        part = [latency for arrived, latency in inside if low <= arrived < high]
        return 1000 * statistics.median(part) if part else math.nan

    return CameraResult(
        name=name,
        delivered_fps=len(inside) / wall,
        decoded_fps=(end.decoded[name] - start.decoded[name]) / wall,
        dropped=end.dropped[name] - start.dropped[name],
        p50_ms=1000 * percentile(latencies, 50) if latencies else math.nan,
        p99_ms=1000 * percentile(latencies, 99) if latencies else math.nan,
        first_third_ms=third_median(0),
        last_third_ms=third_median(2),
    )


def percentile(sorted_values: Sequence[float], pct: float) -> float:
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return float(sorted_values[index])


def camera_names(spec: WorkerSpec) -> list[str]:
    return [f"cam{i}" for i in range(len(spec.urls))]


# raw PyAV: what any Python program must do at the least to get the same frames


def raw_camera(url: str, detect_fps: float, log: CameraLog, stop: threading.Event) -> None:
    try:
        raw_decode(url, detect_fps, log, stop)
    except Exception as exc:  # reported with the result: a dead baseline must not look slow
        log.error = f"{type(exc).__name__}: {exc}"


def raw_decode(url: str, detect_fps: float, log: CameraLog, stop: threading.Event) -> None:
    """Open, decode every frame, keep those campusguard's rate cap keeps, downscale them once to BGR."""
    import av

    from campusguard.sdk.video import RateCap, scaled_size

    with av.open(url, options=RTSP_OPTIONS, timeout=(5.0, 5.0)) as container:
        stream = container.streams.video[0]
        cap = RateCap(detect_fps)
        size: tuple[int, int] | None = None
        for packet in container.demux(stream):
            if stop.is_set():
                return
            for frame in packet.decode():
                log.decoded += 1
                if not cap.admit(float(frame.time) if frame.time is not None else None):
                    continue
                size = size or scaled_size(frame.width, frame.height, WIDTH)
                captured = time.monotonic()
                frame.to_ndarray(width=size[0], height=size[1], format="bgr24")
                log.arrived(captured)


async def run_raw(spec: WorkerSpec, idle_mb: float) -> dict[str, Any]:
    logs = {name: CameraLog() for name in camera_names(spec)}
    stop = threading.Event()
    threads = [
        threading.Thread(target=raw_camera, args=(url, spec.detect_fps, log, stop), name=f"raw:{name}", daemon=True)
        for (name, log), url in zip(logs.items(), spec.urls, strict=True)
    ]
    for thread in threads:
        thread.start()
    try:
        result = await measure(spec, logs, lambda: raw_counters(logs), idle_mb)
        result["states"] = {name: log.error or "loaded" for name, log in logs.items()}
        return result
    finally:
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join, 10)


def raw_counters(logs: dict[str, CameraLog]) -> tuple[dict[str, int], dict[str, int]]:
    return {n: log.decoded for n, log in logs.items()}, {n: 0 for n in logs}


# campusguard: the embedded core, its RTSP cameras, counted where a detector would subscribe


def core_config(spec: WorkerSpec) -> str:
    tables = [
        f'[cameras.{name}]\ntype = "rtsp"\nurl = "{url}"\ndetect_fps = {spec.detect_fps}\ndetect_width = {WIDTH}\n'
        'motion.mode = "gate"\ntamper.enabled = true\n'
        for name, url in zip(camera_names(spec), spec.urls, strict=True)
    ]
    return "\n".join(tables)


async def run_campusguard(spec: WorkerSpec, idle_mb: float) -> dict[str, Any]:
    from campusguard.core.harness import EmbeddedHarness
    from campusguard.sdk import FRAMES, Frame

    logs = {name: CameraLog() for name in camera_names(spec)}

    async def on_frame(frame: Frame) -> None:
        logs[frame.camera_id].arrived(frame.captured.monotonic)

    with tempfile.TemporaryDirectory(prefix="campusguard-bench-") as data_dir:
        async with EmbeddedHarness(core_config(spec), data_dir=Path(data_dir), entry_points=True) as core:
            core.api.bus.subscribe(FRAMES, on_frame, name="bench")
            states = {name: core.state("cameras", name) for name in logs}

            def counters() -> tuple[dict[str, int], dict[str, int]]:
                stats = {name: core.component("cameras", name).stats for name in logs}  # type: ignore[attr-defined]
                return {n: s.decoded for n, s in stats.items()}, {n: s.dropped for n, s in stats.items()}

            result = await measure(spec, logs, counters, idle_mb)
            result["states"] = states
            return result


def worker_main(spec: WorkerSpec) -> None:
    # Both modes load the same libraries before the idle RSS is read, so memory deltas compare.
    import av  # noqa: F401
    import cv2  # noqa: F401

    import campusguard.core.harness
    import campusguard.core.pipeline.camera_runner
    import campusguard.plugins.cameras.rtsp  # noqa: F401

    runner = run_raw if spec.mode == "raw" else run_campusguard
    result = asyncio.run(stoppable(runner(spec, rss_mb())))
    emit("RESULT " + json.dumps(result))


async def stoppable(work: Coroutine[Any, Any, dict[str, Any]]) -> dict[str, Any]:
    """SIGTERM (the parent stopping this worker) cancels the work, so the core stops cleanly."""
    task = asyncio.ensure_future(work)
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    return await task


# --- the parent: runs workers, samples the server ------------------------------------------------


@dataclass
class Run:
    """One worker's measurement, with the server's and the machine's CPU over its window."""

    mode: str
    cameras: int
    detect_fps: float
    result: dict[str, Any]
    server_cpu_pct: float
    machine_busy_pct: float
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def per_camera(self) -> list[dict[str, Any]]:
        return list(self.result["cameras"])

    @property
    def total_fps(self) -> float:
        return float(sum(c["delivered_fps"] for c in self.per_camera))

    @property
    def other_cpu_pct(self) -> float:
        """CPU (% of one core) that neither the worker nor the server used: other processes, the kernel."""
        return self.machine_busy_pct * (os.cpu_count() or 1) - float(self.result["cpu_pct"]) - self.server_cpu_pct


@dataclass
class Sample:
    at: float
    server_cpu_s: float
    machine: tuple[float, float]


def sample(server_pid: int) -> Sample:
    return Sample(time.monotonic(), process_cpu_s(server_pid), machine_busy_s())


def run_worker(spec: WorkerSpec, server_pid: int) -> Run:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(asdict(spec))]
    marks: dict[str, Sample] = {}
    result: dict[str, Any] | None = None
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, cwd=ROOT)
        # A worker that hangs (a stream that never connects) must not hang the benchmark.
        watchdog = threading.Timer(spec.warmup + spec.duration + 60, process.kill)
        watchdog.start()
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith("WINDOW "):
                    marks[line.split()[1]] = sample(server_pid)
                elif line.startswith("RESULT "):
                    result = json.loads(line.removeprefix("RESULT "))
            process.wait()
        finally:
            watchdog.cancel()
            end_process(process)
        stderr.seek(0)
        errors = stderr.read().splitlines()
    if result is None or process.returncode != 0:
        tail = "\n".join(errors[-30:])
        raise RuntimeError(f"{spec.mode} worker with {len(spec.urls)} cameras exited {process.returncode}:\n{tail}")
    start, end = marks["START"], marks["END"]
    wall = end.at - start.at
    busy = (end.machine[0] - start.machine[0]) / max(1e-9, end.machine[1] - start.machine[1])
    server = 100 * (end.server_cpu_s - start.server_cpu_s) / wall
    return Run(spec.mode, len(spec.urls), spec.detect_fps, result, server, 100 * busy, errors[-10:])


def end_process(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


# --- ingest: campusguard against raw PyAV --------------------------------------------------------


def run_ingest(server: RtspServer, args: argparse.Namespace) -> list[Run]:
    urls = camera_urls(server, args.cameras)
    runs: list[Run] = []
    # detect_fps at the stream's rate: every frame is converted and delivered, the heaviest load.
    for index in range(args.rounds):
        # raw, campusguard, campusguard, raw, ...: neither always gets the warmer (or colder) machine
        order = ["raw", "campusguard"] if index % 2 == 0 else ["campusguard", "raw"]
        for mode in order:
            spec = WorkerSpec(mode, urls, float(STREAM_FPS), args.warmup, args.duration)
            run = run_worker(spec, server_pid(server))
            runs.append(run)
            print(f"  ingest round {index + 1}/{args.rounds} {mode:<11} {run.total_fps:6.1f} frames/s", file=sys.stderr)
    return runs


def median_of(runs: list[Run], mode: str, value: Callable[[Run], float]) -> float:
    return statistics.median(value(r) for r in runs if r.mode == mode)


def ingest_ratio(runs: list[Run]) -> float:
    raw = median_of(runs, "raw", lambda r: r.total_fps)
    return median_of(runs, "campusguard", lambda r: r.total_fps) / raw if raw else math.nan


# --- scale: how many cameras keep up -------------------------------------------------------------


def camera_problems(camera: dict[str, Any], detect_fps: float) -> list[str]:
    """Why this camera did not keep up, if it did not: too few frames, a slow decoder, growing lag."""
    problems = []
    name = camera["name"]
    if camera["delivered_fps"] < KEEP_UP * detect_fps:
        problems.append(f"{name}: delivered {camera['delivered_fps']:.1f}/s < {KEEP_UP * detect_fps:.1f}")
    if camera["decoded_fps"] < KEEP_UP * STREAM_FPS:
        problems.append(f"{name}: decoded {camera['decoded_fps']:.1f}/s < {KEEP_UP * STREAM_FPS:.1f}")
    first, last = camera["first_third_ms"] / 1000, camera["last_third_ms"] / 1000
    if math.isnan(last) or last > LATENCY_CEILING_S or last > LATENCY_GROWTH * first + LATENCY_SLACK_S:
        problems.append(f"{name}: latency {1000 * first:.0f} -> {1000 * last:.0f} ms (first -> last third)")
    return problems


def step_problems(run: Run) -> list[str]:
    problems = [f"{n}: {state}" for n, state in run.result.get("states", {}).items() if state != "loaded"]
    for camera in run.per_camera:
        problems += camera_problems(camera, run.detect_fps)
    return problems


def scale_steps(args: argparse.Namespace) -> list[int]:
    """4 cameras (a light reference), then every multiple of ``--step`` up to ``--max-cameras``."""
    if args.quick:
        wanted = {4, GOAL_CAMERAS}
    else:
        wanted = {4, *range(args.step, args.max_cameras + 1, args.step)}
    return sorted(n for n in wanted if n <= args.max_cameras)


def run_scale(server: RtspServer, args: argparse.Namespace) -> tuple[list[Run], int]:
    """Ramp the camera count until a step fails; returns every step and the largest that passed."""
    runs: list[Run] = []
    sustained = 0
    for count in scale_steps(args):
        spec = WorkerSpec("campusguard", camera_urls(server, count), SCALE_DETECT_FPS, args.warmup, args.scale_duration)
        run = run_worker(spec, server_pid(server))
        runs.append(run)
        problems = step_problems(run)
        print(f"  scale {count:>3} cameras: {'PASS' if not problems else 'FAIL'}", file=sys.stderr)
        if problems:
            break
        sustained = count
    return runs, sustained


def server_pid(server: RtspServer) -> int:
    assert server.process is not None
    return server.process.pid


# --- report --------------------------------------------------------------------------------------


def fmt(value: float, spec: str = ".1f") -> str:
    return "-" if math.isnan(value) else format(value, spec)


def print_ingest(runs: list[Run]) -> None:
    print(f"\ningest: {runs[0].cameras} cameras, {WIDTH}x{HEIGHT} at {STREAM_FPS} fps, detect_fps {STREAM_FPS}")
    header = ("mode", "frames/s", "per cam", "CPU %", "CPU ms/frame", "RSS MB", "lat p50 ms", "lat p99 ms",
              "server %", "other %")  # fmt: skip
    print("{:<12} {:>9} {:>8} {:>7} {:>13} {:>7} {:>11} {:>11} {:>9} {:>8}".format(*header))
    for run in runs:
        cams = run.per_camera
        print(
            f"{run.mode:<12} {run.total_fps:>9.1f} {run.total_fps / run.cameras:>8.1f} {run.result['cpu_pct']:>7.1f} "
            f"{fmt(run.result['cpu_ms_per_frame'], '.2f'):>13} {run.result['rss_mb']:>7.0f} "
            f"{fmt(statistics.median(c['p50_ms'] for c in cams)):>11} {fmt(max(c['p99_ms'] for c in cams)):>11} "
            f"{run.server_cpu_pct:>9.1f} {run.other_cpu_pct:>8.0f}"
        )
    cpu_raw = median_of(runs, "raw", lambda r: r.result["cpu_ms_per_frame"])
    cpu_cg = median_of(runs, "campusguard", lambda r: r.result["cpu_ms_per_frame"])
    print(f"CPU per delivered frame: campusguard {cpu_cg:.2f} ms, raw {cpu_raw:.2f} ms ({cpu_cg / cpu_raw:.2f}x)")
    for mode in ("raw", "campusguard"):
        last = [r for r in runs if r.mode == mode][-1]
        threads = ", ".join(f"{k} {v:.0f}%" for k, v in last.result["threads_cpu_pct"].items() if v >= 0.5)
        print(f"  CPU by thread ({mode}, last round): {threads}")


def print_scale(runs: list[Run]) -> None:
    print(f"\nscale: {WIDTH}x{HEIGHT} at {STREAM_FPS} fps, detect_fps {SCALE_DETECT_FPS:g}, motion gate and tamper on")
    header = ("cams", "result", "CPU %", "CPU%/cam", "RSS MB", "MB/cam", "deliv/s min", "decode/s min",
              "p50 ms", "p99 ms", "lag ms 1st->3rd", "server %", "other %")  # fmt: skip
    print("{:>4} {:<6} {:>6} {:>8} {:>7} {:>6} {:>11} {:>12} {:>7} {:>7} {:>16} {:>8} {:>7}".format(*header))
    for run in runs:
        res, cams = run.result, run.per_camera
        per_cam_mb = (res["rss_mb"] - res["rss_idle_mb"]) / run.cameras
        worst = max(cams, key=lambda c: c["last_third_ms"] - c["first_third_ms"])
        print(
            f"{run.cameras:>4} {'PASS' if not step_problems(run) else 'FAIL':<6} {res['cpu_pct']:>6.0f} "
            f"{res['cpu_pct'] / run.cameras:>8.1f} {res['rss_mb']:>7.0f} {per_cam_mb:>6.1f} "
            f"{min(c['delivered_fps'] for c in cams):>11.2f} {min(c['decoded_fps'] for c in cams):>12.2f} "
            f"{fmt(statistics.median(c['p50_ms'] for c in cams)):>7} {fmt(max(c['p99_ms'] for c in cams)):>7} "
            f"{fmt(worst['first_third_ms'], '.0f') + ' -> ' + fmt(worst['last_third_ms'], '.0f'):>16} "
            f"{run.server_cpu_pct:>8.1f} {run.other_cpu_pct:>7.0f}"
        )
    for problem in step_problems(runs[-1])[:8]:
        print(f"  {runs[-1].cameras} cameras: {problem}")
    threads = ", ".join(f"{k} {v:.0f}%" for k, v in runs[-1].result["threads_cpu_pct"].items() if v >= 0.5)
    print(f"  CPU by thread at {runs[-1].cameras} cameras: {threads}")


def warn_other_load(runs: list[Run]) -> None:
    busiest = max((r.other_cpu_pct for r in runs), default=0.0)
    if busiest > OTHER_LOAD_PCT:
        print(f"note: other processes used up to {busiest:.0f} % of a core while measuring; the machine was not")
        print("      idle, so these numbers understate what campusguard alone would sustain")


def verdicts(ingest: list[Run], scale: list[Run], sustained: int) -> dict[str, bool]:
    ok: dict[str, bool] = {}
    if ingest:
        ratio = ingest_ratio(ingest)
        ok["ingest"] = ratio >= GOAL_RATIO
        print(f"ingest ratio {ratio:.2f} (goal >= {GOAL_RATIO}): {'PASS' if ok['ingest'] else 'FAIL'}")
    if scale:
        capped = " (every step passed: raise --max-cameras to find the limit)" if not step_problems(scale[-1]) else ""
        ok["scale"] = sustained >= GOAL_CAMERAS
        label = "PASS" if ok["scale"] else "FAIL"
        print(f"sustained cameras: {sustained}{capped} (goal >= {GOAL_CAMERAS}): {label}")
    return ok


def write_json(args: argparse.Namespace, clip: Path, ingest: list[Run], scale: list[Run], sustained: int,
               ok: dict[str, bool]) -> None:  # fmt: skip
    payload = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "clip": {"path": str(clip), "width": WIDTH, "height": HEIGHT, "fps": STREAM_FPS},
        "options": vars(args),
        "goals": {"ingest_ratio": GOAL_RATIO, "cameras": GOAL_CAMERAS},
        "ingest_ratio": ingest_ratio(ingest) if ingest else None,
        "sustained_cameras": sustained if scale else None,
        "pass": ok,
        "ingest": [asdict(r) for r in ingest],
        "scale": [asdict(r) for r in scale],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(payload, indent=2) + "\n")
    sys.stdout.flush()  # keep the table ahead of the stderr note when both go to one pipe
    print(f"results: {RESULTS}", file=sys.stderr)


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cameras", type=int, default=4, help="cameras in the ingest comparison")
    parser.add_argument("--rounds", type=int, default=2, help="ingest rounds, each raw and campusguard")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds measured per ingest run")
    parser.add_argument("--scale-duration", type=float, default=12.0, help="seconds measured per scale step")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (connect, calibrate)")
    parser.add_argument("--step", type=int, default=8, help="scale steps: 4, then multiples of this")
    parser.add_argument("--max-cameras", type=int, default=64, help="the scale ramp stops here")
    parser.add_argument("--only", choices=["ingest", "scale"], help="run one part")
    parser.add_argument("--quick", action="store_true", help="smoke run (~1 min): 1 short round, 4 and 16 cameras")
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one measurement (JSON spec)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.duration, args.scale_duration, args.warmup = 1, 8.0, 8.0, 4.0
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        worker_main(WorkerSpec(**json.loads(args.worker)))
        return 0
    # SIGTERM unwinds like Ctrl-C does, through the finally blocks that stop the worker and the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run_benchmark(args)
    except KeyboardInterrupt:
        print("interrupted: worker and RTSP server stopped", file=sys.stderr)
        return 130


def run_benchmark(args: argparse.Namespace) -> int:
    longest = args.warmup + max(args.duration, args.scale_duration)
    # Each session plays the file from its start; it must outlast connect + warm-up + window.
    clip = ensure_clip(30 * math.ceil((longest + 30) / 30))
    ingest: list[Run] = []
    scale: list[Run] = []
    sustained = 0
    with rtsp_server(clip, max(args.cameras, args.max_cameras)) as server:
        if args.only != "scale":
            ingest = run_ingest(server, args)
        if args.only != "ingest":
            scale, sustained = run_scale(server, args)
    print(f"\npython {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    if ingest:
        print_ingest(ingest)
    if scale:
        print_scale(scale)
    print()
    warn_other_load(ingest + scale)
    ok = verdicts(ingest, scale, sustained)
    write_json(args, clip, ingest, scale, sustained, ok)
    return 1 if bool(args.check) and not all(ok.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
