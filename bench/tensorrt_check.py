"""TensorRT against ONNX Runtime on the same YOLO-shaped network and inputs, on an NVIDIA machine.

Standalone: needs numpy, onnx, onnxruntime and TensorRT 10 (the PyPI wheel ``tensorrt-cu12``, or
``tensorrt-cu13`` to match a CUDA 13 driver; 11 has no FP16 builder flag), not campusguard. It
loads campusguard's engine code (``detectors/tensorrt_engine.py``) and decoder
(``detectors/yolo_decode.py``, which needs OpenCV) from this checkout by path; when campusguard
itself is installed it also compares the two detectors end to end.

    pip install "tensorrt-cu12>=10,<11" onnxruntime onnx numpy opencv-python-headless
    python bench/tensorrt_check.py [--fp16] [--runs N] [--check]

The network: random weights, YOLOv8-like strides (8, 16, 32), 8.5 GFLOPs at 640x640 (YOLOv8n: 8.7),
output [1, 84, 8400] (cx, cy, w, h, 80 class scores); the class bias is calibrated so that about 20 boxes
score above 0.25, as with a real model on a busy scene. It reports the largest difference of raw
outputs, how the decoded boxes match (IoU, per class), and the latency of both runtimes, as JSON
to ``$OUT/tensorrt_check.json`` when ``$OUT`` is set, else ``bench/results/tensorrt_check.json``
(written after each stage, so a run that dies still leaves what it learned). Whole run < 3 min.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import platform
import signal
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SIZE, CLASSES, ANCHORS = 640, 80, 8400
CONFIDENCE, IOU = 0.25, 0.45
# FP32 engines (TensorRT may use TF32): scores within 0.01, boxes within 1 px; FP16: 0.03 and 3 px.
TOLERANCE = {"fp32": (0.01, 1.0), "fp16": (0.03, 3.0)}
MATCH_IOU = 0.95
WIDTH = 1.5  # channels x 1.5: 8.5 GFLOPs, the compute of YOLOv8n
DEADLINE_S = 170
INSTALL = '`pip install "tensorrt-cu12>=10,<11"` (a driver for CUDA 12) or `"tensorrt-cu13>=10,<11"` (CUDA 13)'


# -- the network ------------------------------------------------------------------------------------------


def yolo_like_model(
    path: Path, *, size: int = SIZE, width: float = 1.0, seed: int = 0, class_bias: float = 0.0
) -> Path:
    """A random-weight conv net with YOLOv8's strides and output layout, saved to ``path``.

    ``width`` scales every layer's channels (1.0: ~3.8 GFLOPs at 640; 1.5: ~8.6, YOLOv8n's 8.7).
    The multiply-adds x 2 are recorded in the model's metadata as ``gflops``.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    nodes: list[Any] = []
    inits: list[Any] = []
    flops = [0.0]

    def tensor(name: str, value: np.ndarray, dtype: type = np.float32) -> str:
        inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def conv(x: str, cin: int, cout: int, side: int, k: int = 3, stride: int = 1, act: bool = True) -> str:
        """A convolution whose output is ``side`` x ``side``, with SiLU unless ``act`` is False."""
        name = f"conv{len(nodes)}"
        w = rng.normal(0.0, (2.0 / (cin * k * k)) ** 0.5, (cout, cin, k, k))  # He init: activations stay O(1)
        inputs = [x, tensor(f"{name}_w", w), tensor(f"{name}_b", np.zeros(cout))]
        nodes.append(helper.make_node("Conv", inputs, [name], strides=[stride] * 2, pads=[k // 2] * 4))
        flops[0] += 2 * cin * cout * k * k * side * side
        if not act:
            return name
        nodes.append(helper.make_node("Sigmoid", [name], [f"{name}_s"]))
        nodes.append(helper.make_node("Mul", [name, f"{name}_s"], [f"{name}_silu"]))  # SiLU, as YOLOv8
        return f"{name}_silu"

    c = [max(8, round(n * width)) for n in (16, 32, 64, 128, 256)]
    x = conv("images", 3, c[0], size // 2, stride=2)
    x = conv(x, c[0], c[1], size // 4, stride=2)
    x = conv(x, c[1], c[1], size // 4)
    x = conv(x, c[1], c[2], size // 8, stride=2)
    p3 = conv(x, c[2], c[2], size // 8)
    x = conv(p3, c[2], c[3], size // 16, stride=2)
    p4 = conv(x, c[3], c[3], size // 16)
    x = conv(p4, c[3], c[4], size // 32, stride=2)
    p5 = conv(x, c[4], c[4], size // 32)
    channels, head = 4 + CLASSES, c[2]
    flat = []
    for level, (feature, cin, stride) in enumerate([(p3, c[2], 8), (p4, c[3], 16), (p5, c[4], 32)]):
        side = size // stride
        out = conv(conv(feature, cin, head, side), head, channels, side, k=1, act=False)
        shape = tensor(f"shape{level}", np.array([1, channels, side * side]), np.int64)
        nodes.append(helper.make_node("Reshape", [out, shape], [f"flat{level}"]))
        flat.append(f"flat{level}")
    nodes.append(helper.make_node("Concat", flat, ["raw"], axis=2))
    # cx, cy in [0, size], w, h in [0, size/4]; class scores sigmoided, shifted by the calibrated bias.
    shift = np.array([0.0] * 4 + [class_bias] * CLASSES).reshape(1, channels, 1)
    scale = np.array([size, size, size / 4, size / 4] + [1.0] * CLASSES).reshape(1, channels, 1)
    nodes += [
        helper.make_node("Add", ["raw", tensor("shift", shift)], ["shifted"]),
        helper.make_node("Sigmoid", ["shifted"], ["squashed"]),
        helper.make_node("Mul", ["squashed", tensor("scale", scale)], ["output0"]),
    ]
    anchors = sum((size // s) ** 2 for s in (8, 16, 32))
    graph = helper.make_graph(
        nodes,
        "yolo_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels, anchors])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    names = repr({i: f"class{i}" for i in range(CLASSES)})
    helper.set_model_props(model, {"names": names, "gflops": f"{flops[0] / 1e9:.2f}"})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def gflops(path: Path) -> float:
    """The compute of a :func:`yolo_like_model`, from its metadata."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return float(props["gflops"])


def scene(height: int = SIZE, width: int = SIZE, seed: int = 0) -> np.ndarray:
    """A smooth random BGR image (blocks of colour, like a blurred scene); no OpenCV needed."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 16 + 1, width // 16 + 1, 3)).astype(np.float32)
    image = np.kron(small, np.ones((16, 16, 1), dtype=np.float32))[:height, :width]
    return np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)


def as_input(image: np.ndarray) -> np.ndarray:
    """A SIZE x SIZE BGR image as the network's NCHW RGB float tensor in [0, 1]."""
    return np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1)[None], dtype=np.float32) / 255


def ort_session(path: Path, threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def calibrated_model(path: Path, *, size: int = SIZE, width: float = 1.0, seed: int = 0, boxes: int = 20) -> Path:
    """:func:`yolo_like_model` with the class bias that leaves about ``boxes`` anchors above 0.25."""
    yolo_like_model(path, size=size, width=width, seed=seed)
    out = ort_session(path).run(None, {"images": as_input(scene(size, size, seed))})[0][0]
    best = np.clip(out[4:].max(axis=0), 1e-6, 1 - 1e-6)
    logits = np.log(best / (1 - best))
    wanted = np.log(CONFIDENCE / (1 - CONFIDENCE))
    bias = float(wanted - np.quantile(logits, 1 - boxes / out.shape[1]))
    return yolo_like_model(path, size=size, width=width, seed=seed, class_bias=bias)


# -- the check --------------------------------------------------------------------------------------------


def load_by_path(name: str, file: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def version(module: str) -> str:
    try:
        return str(getattr(importlib.import_module(module), "__version__", "?"))
    except Exception as exc:
        return f"not importable: {type(exc).__name__}: {exc}"


def timings(call: Any, runs: int) -> dict[str, float]:
    for _ in range(max(3, runs // 10)):
        call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {"median_ms": statistics.median(samples), "p90_ms": samples[int(0.9 * (len(samples) - 1))], "runs": runs}


def decoded(decode: ModuleType, output: np.ndarray) -> list[tuple[int, float, np.ndarray]]:
    """(class, score, box) kept by decode + NMS, as the detectors do (per class, IoU 0.45)."""
    thresholds = np.full(CLASSES, CONFIDENCE)
    found = decode.decode_v8(output[0], thresholds)
    kept = decode.nms(found, found.classes, IOU)
    return [(int(found.classes[i]), float(found.scores[i]), found.boxes[i]) for i in kept]


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def compare_decoded(decode: ModuleType, want: np.ndarray, got: np.ndarray) -> dict[str, Any]:
    cpu, gpu = decoded(decode, want), decoded(decode, got)
    matched, ious, score_diffs, clear, clear_matched = 0, [], [], 0, 0
    for cls, score, box in cpu:
        same = [(box_iou(box, b), abs(score - s)) for c, s, b in gpu if c == cls]
        best = max(same, default=(0.0, 1.0))
        ious.append(best[0])
        matched += best[0] >= MATCH_IOU
        score_diffs.append(best[1])
        if score >= CONFIDENCE + 0.02:  # near the threshold either runtime may drop it
            clear += 1
            clear_matched += best[0] >= MATCH_IOU
    return {
        "onnxruntime_boxes": len(cpu),
        "tensorrt_boxes": len(gpu),
        "matched_iou_0.95": matched,
        "clear_boxes": clear,
        "clear_matched": clear_matched,
        "min_iou": min(ious, default=None),
        "max_score_diff_matched": max(score_diffs, default=None),
    }


class Report:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "stages": []}

    def stage(self, name: str, **values: Any) -> None:
        self.data[name] = values
        self.data["stages"].append(name)
        self.save()
        print(f"[{name}] {json.dumps(values, default=str)}", flush=True)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(self.data, indent=2, default=str) + "\n")


def environment() -> dict[str, Any]:
    info: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        **{name: version(name) for name in ("numpy", "onnx", "onnxruntime", "tensorrt", "cv2")},
    }
    try:
        import subprocess

        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        info["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
    except Exception as exc:
        info["nvidia_smi"] = f"unavailable: {exc}"
    return info


def run_precision(
    engine_mod: ModuleType,
    decode: ModuleType | None,
    model: Path,
    work: Path,
    fp16: bool,
    tensor: np.ndarray,
    want: np.ndarray,
    runs: int,
) -> dict[str, Any]:
    target = work / f"model-{'fp16' if fp16 else 'fp32'}.engine"
    start = time.perf_counter()
    engine_mod.build_engine(model, target, fp16=fp16, batch=1, size=(SIZE, SIZE), log=print)
    build_s = time.perf_counter() - start
    runner = engine_mod.TrtRunner(target, 1, (SIZE, SIZE))
    try:
        got = runner.run(tensor)
        latency = timings(lambda: runner.run(tensor), runs)
    finally:
        runner.close()
    score_tol, box_tol = TOLERANCE["fp16" if fp16 else "fp32"]
    scores = float(np.abs(got[:, 4:] - want[:, 4:]).max())
    boxes = float(np.abs(got[:, :4] - want[:, :4]).max())
    result: dict[str, Any] = {
        "build_s": round(build_s, 1),
        "engine_mb": round(target.stat().st_size / 1e6, 1),
        "max_abs_diff_scores": scores,
        "max_abs_diff_boxes_px": boxes,
        "mean_abs_diff": float(np.abs(got - want).mean()),
        "tensorrt_latency": latency,
        "within_tolerance": scores <= score_tol and boxes <= box_tol,
        "tolerance": {"scores": score_tol, "boxes_px": box_tol},
    }
    if decode is not None:
        result["decoded"] = compare_decoded(decode, want, got)
        d = result["decoded"]
        result["within_tolerance"] = result["within_tolerance"] and d["clear_matched"] == d["clear_boxes"]
    return result


def campusguard_end_to_end(model: Path, work: Path) -> dict[str, Any]:
    """Both detectors as the core runs them, on non-square frames (letterbox included)."""
    import asyncio

    from campusguard.detectors.tensorrt import YoloTensorRTDetector
    from campusguard.detectors.yolo import YoloDetector
    from campusguard.sdk import Frame
    from campusguard.sdk.testing.stubs import make_context

    frames = [
        Frame(camera_id="c", sequence=i, width=w, height=h, image=scene(h, w, i))
        for i, (w, h) in enumerate([(1280, 720), (640, 480), (1920, 1080)])
    ]

    async def detect(cls: Any, **options: Any) -> tuple[Any, float]:
        config = cls.Config.model_validate({"model": str(model), **options})
        detector = cls("check", config, make_context("check", work))
        for attempt in range(30):  # the first start may report NotReady while the engine builds
            try:
                await detector.start()
                break
            except Exception as exc:
                if type(exc).__name__ != "NotReady" or attempt == 29:
                    raise
                await asyncio.sleep(5)
        try:
            found = await detector.detect(frames)
            start = time.perf_counter()
            for _ in range(20):
                await detector.detect(frames[:1])
            return found, (time.perf_counter() - start) / 20 * 1000
        finally:
            await detector.stop()

    def corners(d: Any) -> np.ndarray:
        return np.array([d.box.x1, d.box.y1, d.box.x2, d.box.y2])

    async def both() -> dict[str, Any]:
        # A low threshold gives more boxes to compare than the calibrated 0.25.
        cpu, cpu_ms = await detect(YoloDetector, confidence=0.1, threads=os.cpu_count() or 2)
        gpu, gpu_ms = await detect(YoloTensorRTDetector, confidence=0.1, engine_cache=str(work / "cache"))
        per_frame = []
        for a, b in zip(cpu, gpu, strict=True):
            ious = [max((box_iou(corners(d), corners(e)) for e in b if e.label == d.label), default=0.0) for d in a]
            per_frame.append({"onnxruntime": len(a), "tensorrt": len(b), "min_iou": min(ious, default=None)})
        return {"frames": per_frame, "detect_ms_onnxruntime": cpu_ms, "detect_ms_tensorrt": gpu_ms}

    return asyncio.run(both())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fp16", action="store_true", help="also build and compare an FP16 engine (TensorRT 10)")
    parser.add_argument("--runs", type=int, default=50, help="timed inferences per runtime")
    parser.add_argument("--check", action="store_true", help="exit 1 unless everything is within tolerance")
    args = parser.parse_args()

    out_dir = Path(os.environ["OUT"]) if os.environ.get("OUT") else ROOT / "bench" / "results"
    report = Report(out_dir / "tensorrt_check.json")

    def overtime(signum: int, frame: Any) -> None:
        raise TimeoutError(f"tensorrt_check ran past {DEADLINE_S} s")

    signal.signal(signal.SIGALRM, overtime)
    signal.alarm(DEADLINE_S)
    ok = False
    try:
        report.stage("environment", **environment())
        engine_mod = load_by_path("campusguard_tensorrt_engine", ROOT / "detectors" / "tensorrt_engine.py")
        available, reason = engine_mod.availability()
        report.stage("availability", available=available, reason=reason)
        if not available:
            print(f"\nTensorRT cannot run here: {reason}\nCheck `nvidia-smi`, then {INSTALL}.")
            report.data["verdict"] = "UNAVAILABLE"
            report.save()
            return 1 if args.check else 0
        try:
            decode: ModuleType | None = load_by_path("campusguard_yolo_decode", ROOT / "detectors" / "yolo_decode.py")
        except ImportError as exc:
            decode = None
            print(f"decoded-box comparison skipped ({exc}): pip install opencv-python-headless")
        work = Path(tempfile.mkdtemp(prefix="tensorrt_check-"))
        model = calibrated_model(work / "yolo_like.onnx", width=WIDTH)
        tensor = as_input(scene())
        cpu = ort_session(model)
        want = cpu.run(None, {"images": tensor})[0]
        report.stage(
            "model",
            input=[1, 3, SIZE, SIZE],
            output=list(want.shape),
            gflops=gflops(model),
            onnx_mb=round(model.stat().st_size / 1e6, 1),
            onnxruntime_cpu_latency=timings(lambda: cpu.run(None, {"images": tensor}), max(10, args.runs // 5)),
        )
        results = {"fp32": run_precision(engine_mod, decode, model, work, False, tensor, want, args.runs)}
        report.stage("fp32", **results["fp32"])
        if args.fp16:
            try:  # a failed FP16 build (TensorRT 11 has no flag) must not hide the end-to-end stage
                results["fp16"] = run_precision(engine_mod, decode, model, work, True, tensor, want, args.runs)
                report.stage("fp16", **results["fp16"])
            except Exception as exc:
                report.stage("fp16", error=f"{type(exc).__name__}: {exc}")
                results["fp16"] = {"within_tolerance": False}
        ok = all(r["within_tolerance"] for r in results.values())
        try:
            report.stage("campusguard", **campusguard_end_to_end(model, work))
        except ImportError as exc:
            report.stage("campusguard", skipped=f"campusguard not installed ({exc})")
        except Exception as exc:  # the raw engine works but the plugin does not: a real failure
            report.stage("campusguard", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
            ok = False
    except BaseException as exc:  # keep what was learned, and say where it stopped
        report.stage("error", type=type(exc).__name__, message=str(exc), traceback=traceback.format_exc())
    finally:
        signal.alarm(0)
    report.data["verdict"] = "PASS" if ok else "FAIL"
    report.save()
    print(f"{'PASS' if ok else 'FAIL'}: TensorRT vs ONNX Runtime within tolerance; report in {report.path}")
    return 0 if ok or not args.check else 1


if __name__ == "__main__":
    sys.exit(main())
