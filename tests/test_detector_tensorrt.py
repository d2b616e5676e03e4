"""The YOLO detector on TensorRT.

Everywhere: the plugin loads, and without CUDA or tensorrt its detectors report why they cannot
run while the rest keeps running; the engine cache and background build are checked with a stand-in
runtime. On an NVIDIA machine with ``tensorrt`` installed, the GPU tests compare TensorRT with ONNX
Runtime on the same models; elsewhere they skip with the reason :func:`availability` gives (the
only skip in the suite).

Tolerance (FP32 engines, which TensorRT may run in TF32): on planted outputs, the same detections
(boxes within 1e-6 relative, scores to 4 decimals); on a random-weight network, raw scores within
0.01 and raw box coordinates within 1 px of 640, and every box that clears the threshold by 0.02
(and its runner-up class by 0.02) above the threshold for TensorRT too, with the same class.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from test_detector_yolo import Planted, box_at, frame, planted_model

from campusguard.detectors import tensorrt as trt_plugin
from campusguard.detectors import tensorrt_engine
from campusguard.detectors.tensorrt import YoloTensorRTDetector, availability
from campusguard.detectors.yolo import YoloDetector
from campusguard.sdk import ConfigError, Frame, NotReady
from campusguard.sdk.testing.conformance import DetectorConformance
from campusguard.sdk.testing.stubs import make_context

AVAILABLE, REASON = availability()
gpu = pytest.mark.skipif(not AVAILABLE, reason=f"TensorRT unavailable: {REASON}")


def compute_model(path: Path, classes: int = 2, seed: int = 0) -> Path:
    """A small random-weight convolutional net with a YOLOv8-shaped output [1, 4+classes, 6400]."""
    rng = np.random.default_rng(seed)
    channels = 4 + classes

    def conv(name: str, cin: int, cout: int) -> list[Any]:
        w = rng.normal(0, (2 / (9 * cin)) ** 0.5, (cout, cin, 3, 3)).astype(np.float32)
        return [helper.make_tensor(f"{name}_w", TensorProto.FLOAT, w.shape, w.ravel().tolist())]

    inits = conv("c1", 3, 16) + conv("c2", 16, 32) + conv("c3", 32, channels)
    scale = np.array([640] * 4 + [1] * classes, dtype=np.float32).reshape(1, channels, 1)
    inits += [
        helper.make_tensor("flat", TensorProto.INT64, [3], [1, channels, 6400]),
        helper.make_tensor("scale", TensorProto.FLOAT, scale.shape, scale.ravel().tolist()),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "c1_w"], ["a1"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2_w"], ["a2"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a2"], ["r2"]),
        helper.make_node("Conv", ["r2", "c3_w"], ["a3"], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["a3", "flat"], ["a4"]),
        helper.make_node("Sigmoid", ["a4"], ["a5"]),
        helper.make_node("Mul", ["a5", "scale"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "compute",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels, 6400])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"names": repr({i: f"c{i}" for i in range(classes)})})
    onnx.save(model, str(path))
    return path


async def detections(cls: type[YoloDetector], tmp_path: Path, frames: list[Frame], **options: Any) -> Any:
    config = cls.Config.model_validate(options)
    detector = cls("d", config, make_context("d", tmp_path))
    await detector.start()
    try:
        return await detector.detect(frames)
    finally:
        await detector.stop()


# -- everywhere -------------------------------------------------------------------------------------------


async def test_the_plugin_loads_and_says_why_it_cannot_run(campusguard_core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model = planted_model(tmp_path / "weapons.onnx", [box_at(320, {0: 0.9})], 1, names=["gun"])
    config = f'[detectors.gpu]\ntype = "yolo_tensorrt"\nmodel = "{model}"\n'
    config += f'[detectors.cpu]\ntype = "yolo"\nmodel = "{model}"\n'
    async with campusguard_core(config, entry_points=True) as core:
        assert core.plugin_status("builtin-tensorrt") == ("loaded", None)
        assert core.state("detectors", "cpu") == "loaded"
        if AVAILABLE:
            assert core.state("detectors", "gpu") in ("loaded", "setup_retry")  # setup_retry: still building
        else:
            assert core.state("detectors", "gpu") == "setup_error"
            assert core.error("detectors", "gpu") == f"ConfigError: yolo_tensorrt unavailable: {REASON}"


def test_availability_names_what_is_missing() -> None:
    ok, reason = availability()
    assert ok == AVAILABLE
    if not ok:
        assert "campusguard[gpu]" in reason and ("CUDA" in reason or "tensorrt" in reason)


class OnnxRuntimeAsEngine:
    """Stands in for TensorRT: the 'engine' file holds the ONNX bytes, run by onnxruntime."""

    def __init__(self, engine: Path, batch: int, size: tuple[int, int]) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(engine.read_bytes(), providers=["CPUExecutionProvider"])

    def run(self, tensor: np.ndarray) -> np.ndarray:
        result: np.ndarray = self.session.run(None, {"images": tensor})[0]
        return result

    def close(self) -> None:
        pass


async def test_first_start_builds_in_the_background_then_the_cache_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    builds: list[Path] = []

    def build(onnx: Path, target: Path, **_: Any) -> None:
        builds.append(target)
        import time

        time.sleep(0.5)  # long enough for start() to give up waiting
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(onnx.read_bytes())

    monkeypatch.setattr(tensorrt_engine, "availability", lambda: (True, "stand-in"))
    monkeypatch.setattr(tensorrt_engine, "engine_file", lambda onnx, cache, **kw: cache / f"{onnx.stem}.engine")
    monkeypatch.setattr(tensorrt_engine, "build_engine", build)
    monkeypatch.setattr(tensorrt_engine, "TrtRunner", OnnxRuntimeAsEngine)
    monkeypatch.setattr(trt_plugin, "BUILD_WAIT", 0.1)
    model = planted_model(tmp_path / "weapons.onnx", [box_at(320, {0: 0.9})], 1, names=["gun"])
    config = YoloTensorRTDetector.Config(model=model, engine_cache=tmp_path / "engines")
    detector = YoloTensorRTDetector("gpu", config, make_context("gpu", tmp_path))
    for _ in range(2):  # a retry during the build joins it instead of starting another
        with pytest.raises(NotReady, match=r"building the TensorRT engine for .*weapons\.onnx"):
            await detector.start()
    await asyncio.wrap_future(trt_plugin._BUILDS[tmp_path / "engines" / "weapons.engine"])  # the build ends
    await detector.start()
    try:
        [found] = await detector.detect([frame()])
    finally:
        await detector.stop()
    assert [d.label for d in found] == ["gun"]
    await detector.start()  # the cached engine: no build
    await detector.stop()
    assert builds == [tmp_path / "engines" / "weapons.engine"]


async def test_a_build_that_fails_after_start_gave_up_is_reported_then_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Never a silent rebuild loop: the next start raises the build's error; the one after builds again."""
    builds: list[Path] = []

    def build(onnx: Path, target: Path, **_: Any) -> None:
        builds.append(target)
        import time

        time.sleep(0.3)
        raise tensorrt_engine.EngineError(f"{onnx}: TensorRT could not build an engine (out of memory)")

    monkeypatch.setattr(tensorrt_engine, "availability", lambda: (True, "stand-in"))
    monkeypatch.setattr(tensorrt_engine, "engine_file", lambda onnx, cache, **kw: cache / f"{onnx.stem}.engine")
    monkeypatch.setattr(tensorrt_engine, "build_engine", build)
    monkeypatch.setattr(trt_plugin, "BUILD_WAIT", 0.1)
    model = planted_model(tmp_path / "late.onnx", [box_at(320, {0: 0.9})], 1, names=["gun"])
    detector = YoloTensorRTDetector("gpu", YoloTensorRTDetector.Config(model=model), make_context("gpu", tmp_path))
    target = tmp_path / "tensorrt" / "late.engine"
    with pytest.raises(NotReady):
        await detector.start()
    with pytest.raises(tensorrt_engine.EngineError):
        await asyncio.wrap_future(trt_plugin._BUILDS[target])  # it fails with nobody waiting
    with pytest.raises(ConfigError, match=r"late\.onnx: TensorRT could not build an engine \(out of memory\)"):
        await detector.start()
    with pytest.raises(NotReady):  # told once; a start after that (the model fixed, memory freed) builds again
        await detector.start()
    assert builds == [target, target]
    await asyncio.sleep(0.4)  # let the second stand-in build end before the test does


# Test doubles for TensorRT 10's Python API and the CUDA driver, with the calls and return types
# checked against the tensorrt-cu12-bindings 10.13 wheel (pyCore.cpp): set_input_shape and
# add_optimization_profile return a status instead of raising; a builder that CUDA cannot back
# raises TypeError from pybind11's factory.


class FakeCuda:
    def __init__(self) -> None:
        self.allocated: list[int] = []
        self.freed: list[int] = []
        self.streams: list[int] = []
        self.device_name, self.compute_capability = "Stand-in GPU", "9.0"

    def bind(self) -> None:
        pass

    def malloc(self, size: int) -> int:
        self.allocated.append(len(self.allocated) + 1)
        return self.allocated[-1]

    def free(self, pointer: int) -> None:
        self.freed.append(pointer)

    def stream(self) -> int:
        self.streams.append(99)
        return 99

    def destroy_stream(self, stream: int) -> None:
        self.streams.remove(stream)

    def synchronize(self, stream: int) -> None:
        pass


class FakeContext:
    def __init__(self, accepts: set[tuple[int, ...]], output_fails: bool = False) -> None:
        self.accepts, self.output_fails, self.shape = accepts, output_fails, (0,)

    def set_input_shape(self, name: str, shape: tuple[int, ...]) -> bool:
        if tuple(shape) not in self.accepts:
            return False  # TensorRT logs and returns False: it does not raise
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        if self.output_fails:
            raise RuntimeError("stand-in failure while binding outputs")
        return (self.shape[0], 6, 8400)

    def set_tensor_address(self, name: str, pointer: int) -> bool:
        return True


def fake_tensorrt(context: FakeContext | None = None, builder_error: Exception | None = None) -> Any:
    from types import SimpleNamespace

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, index: int) -> str:
            return ["images", "output0"][index]

        def get_tensor_mode(self, name: str) -> str:
            return "INPUT" if name == "images" else "OUTPUT"

        def get_tensor_dtype(self, name: str) -> str:
            return "FLOAT"

        def create_execution_context(self) -> FakeContext | None:
            return context

    def builder(logger: Any) -> Any:
        if builder_error is not None:
            raise builder_error
        raise AssertionError("not reached in these tests")

    class Logger:
        WARNING = 2

        def __init__(self, severity: int) -> None:
            pass

    return SimpleNamespace(
        __version__="10.13.0.35",
        Logger=Logger,
        Builder=builder,
        Runtime=lambda logger: SimpleNamespace(deserialize_cuda_engine=lambda data: Engine()),
        TensorIOMode=SimpleNamespace(INPUT="INPUT"),
        nptype=lambda kind: np.float32,
    )


@pytest.fixture
def stand_in_cuda(monkeypatch: pytest.MonkeyPatch) -> FakeCuda:
    fake = FakeCuda()
    monkeypatch.setattr(tensorrt_engine, "cuda", lambda: fake)
    monkeypatch.setattr(tensorrt_engine, "_LOGGER", None)
    return fake


def test_tensorrt_refusals_are_engine_errors_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stand_in_cuda: FakeCuda
) -> None:
    nullptr = TypeError("pybind11::init(): factory function returned nullptr")
    monkeypatch.setattr(tensorrt_engine, "tensorrt", lambda: fake_tensorrt(builder_error=nullptr))
    model = tmp_path / "m.onnx"
    model.write_bytes(b"onnx")
    with pytest.raises(tensorrt_engine.EngineError, match=r"m\.onnx: TensorRT failed to build an engine \(TypeError"):
        tensorrt_engine.build_engine(model, tmp_path / "m.engine", fp16=False, batch=1, size=(640, 640))


def test_the_runner_checks_shapes_and_frees_what_it_allocated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stand_in_cuda: FakeCuda
) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    batch2, batch1 = (2, 3, 640, 640), (1, 3, 640, 640)
    context = FakeContext(accepts={batch2})  # an engine built for batch 2 only
    monkeypatch.setattr(tensorrt_engine, "tensorrt", lambda: fake_tensorrt(context))
    runner = tensorrt_engine.TrtRunner(engine, 2, (640, 640))
    with pytest.raises(tensorrt_engine.EngineError, match=r"exceeds the engine's buffers"):
        runner.run(np.zeros((3, 3, 640, 640), np.float32))  # would overrun the device buffer
    with pytest.raises(tensorrt_engine.EngineError, match=r"refused input shape \[1, 3, 640, 640\]"):
        runner.run(np.zeros(batch1, np.float32))
    runner.close()
    runner.close()  # twice is fine
    assert stand_in_cuda.freed == stand_in_cuda.allocated == [1, 2] and stand_in_cuda.streams == []

    # A failure half-way through construction frees what was allocated, and names the engine.
    fresh = FakeCuda()
    monkeypatch.setattr(tensorrt_engine, "cuda", lambda: fresh)
    broken = FakeContext(accepts={batch2}, output_fails=True)
    monkeypatch.setattr(tensorrt_engine, "tensorrt", lambda: fake_tensorrt(broken))
    with pytest.raises(tensorrt_engine.EngineError, match=r"m\.engine: TensorRT could not run this engine"):
        tensorrt_engine.TrtRunner(engine, 2, (640, 640))
    assert fresh.freed == fresh.allocated and fresh.streams == []

    # No execution context (out of GPU memory): said so, not an AttributeError later.
    monkeypatch.setattr(tensorrt_engine, "tensorrt", lambda: fake_tensorrt(None))
    with pytest.raises(tensorrt_engine.EngineError, match="could not create an execution context"):
        tensorrt_engine.TrtRunner(engine, 2, (640, 640))


# -- on an NVIDIA machine ---------------------------------------------------------------------------------


@gpu
async def test_same_detections_as_onnxruntime_on_planted_boxes(tmp_path: Path) -> None:
    planted = [box_at(100, {1: 0.9}), box_at(104, {1: 0.6}), box_at(300, {2: 0.7}), Planted(620, 320, 80, 40, {0: 0.8})]
    model = planted_model(tmp_path / "m.onnx", planted, 3, names=["person", "gun", "knife"])
    frames = [frame(1280, 720, 0), frame(480, 640, 1)]
    options = {"model": str(model), "label_map": {"gun": "weapon", "knife": "weapon"}}
    cpu = await detections(YoloDetector, tmp_path, frames, **options)
    gpu_found = await detections(YoloTensorRTDetector, tmp_path, frames, **options)
    for a, b in zip(cpu, gpu_found, strict=True):
        assert [(d.label, round(d.score, 4)) for d in a] == [(d.label, round(d.score, 4)) for d in b]
        for x, y in zip(a, b, strict=True):
            assert (y.box.x1, y.box.y1, y.box.x2, y.box.y2) == pytest.approx((x.box.x1, x.box.y1, x.box.x2, x.box.y2))


@gpu
async def test_same_outputs_and_detections_as_onnxruntime_on_a_real_network(tmp_path: Path) -> None:
    from campusguard.detectors.tensorrt_engine import TrtRunner, build_engine
    from campusguard.detectors.yolo import OnnxRuntimeRunner, open_session

    model = compute_model(tmp_path / "net.onnx")
    tensor = np.random.default_rng(1).random((1, 3, 640, 640), dtype=np.float32)
    engine = tmp_path / "net.engine"
    await asyncio.to_thread(build_engine, model, engine, fp16=False, batch=1, size=(640, 640))
    runner = TrtRunner(engine, 1, (640, 640))
    try:
        got = runner.run(tensor)
    finally:
        runner.close()
    want = OnnxRuntimeRunner(open_session(model, 2)).run(tensor)
    assert got.shape == want.shape == (1, 6, 6400)
    assert np.abs(got[:, 4:] - want[:, 4:]).max() <= 0.01
    assert np.abs(got[:, :4] - want[:, :4]).max() <= 1.0

    # Every box ONNX Runtime finds clearly (0.02 above the threshold, 0.02 ahead of its second class)
    # TensorRT finds too, with the same class: ties may go either way, clear cases may not.
    cpu_scores, gpu_scores = want[0, 4:], got[0, 4:]
    top2 = np.sort(cpu_scores, axis=0)[-2:]
    clear = (top2[1] >= 0.62) & (top2[1] - top2[0] >= 0.02)
    assert clear.sum() > 100, "the random net should give plenty of boxes to compare"
    assert (gpu_scores[:, clear].argmax(axis=0) == cpu_scores[:, clear].argmax(axis=0)).all()
    assert (gpu_scores[:, clear].max(axis=0) > 0.6).all()


@gpu
async def test_engines_are_cached_by_model_and_reused(tmp_path: Path) -> None:
    model = planted_model(tmp_path / "m.onnx", [box_at(320, {0: 0.9})], 1, names=["gun"])
    cache = tmp_path / "engines"
    for _ in range(2):
        await detections(YoloTensorRTDetector, tmp_path, [frame()], model=str(model), engine_cache=str(cache))
    [engine] = list(cache.glob("*.engine"))
    built = engine.stat().st_mtime_ns
    await detections(YoloTensorRTDetector, tmp_path, [frame()], model=str(model), engine_cache=str(cache))
    assert engine.stat().st_mtime_ns == built
    other = planted_model(tmp_path / "m.onnx", [box_at(100, {0: 0.9})], 1, names=["gun"])  # same name, new bytes
    await detections(YoloTensorRTDetector, tmp_path, [frame()], model=str(other), engine_cache=str(cache))
    assert len(list(cache.glob("*.engine"))) == 2


@gpu
async def test_bad_models_are_clear_errors_on_tensorrt_too(tmp_path: Path) -> None:
    text = tmp_path / "weapons.onnx"
    text.write_text("not a model\n")
    with pytest.raises(Exception, match=r"weapons\.onnx is not an ONNX model"):
        await detections(YoloTensorRTDetector, tmp_path, [frame()], model=str(text))


@gpu
class TestTensorRTConformance(DetectorConformance):
    component_class = YoloTensorRTDetector
    deadline = 120.0  # the first start builds the engine
    model: ClassVar[Path]

    @pytest.fixture(autouse=True)
    def _planted(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        path = tmp_path_factory.getbasetemp() / "conformance-trt.onnx"
        if not path.exists():
            planted_model(path, [box_at(320, {0: 0.9})], 1, names=["gun"])
        type(self).model = path

    def valid_config(self) -> dict[str, Any]:
        return {"model": str(self.model), "engine_cache": str(self.model.parent / "engines")}
