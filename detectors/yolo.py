"""Generic YOLO detector on ONNX Runtime, for user-supplied weights (a school's or a vendor's model).

YOLOv8/YOLO11 (``[1, 4+nc, N]``) and YOLOv5 (``[1, N, 5+nc]``) exports; class names from the model's
metadata or the config; per-class thresholds; NMS per output label; a label map (``gun``,
``knife`` → ``weapon``). Importing this module is cheap: numpy, OpenCV and onnxruntime load in
``start()``, and all model work runs on the detector's own worker thread, never on the event loop.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from campusguard.sdk import Box, ComponentContext, ConfigError, Detection, Detector, Frame, Registry, hookimpl

if TYPE_CHECKING:
    import numpy as np

    from .yolo_decode import DecodeSpec, InputBuffer, Letterbox

Score = Annotated[float, Field(ge=0.0, le=1.0)]
DEFAULT_SIZE = 640  # input side for models exported with dynamic height and width


class YoloConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Path = Field(description="the ONNX file; relative to the config file's folder")
    classes: list[str] | None = Field(default=None, description="class names, in model order (overrides metadata)")
    confidence: Score = Field(default=0.25, description="score a box needs, unless its class has its own")
    class_confidence: dict[str, Score] = Field(
        default_factory=dict, description="per-class thresholds, by model class name or mapped label"
    )
    iou: float = Field(default=0.45, gt=0.0, le=1.0, description="overlap above which NMS merges boxes")
    label_map: dict[str, str] = Field(default_factory=dict, description="model class → reported label")
    keep: list[str] | None = Field(default=None, description="labels to report (after mapping); None keeps all")
    layout: Literal["auto", "v8", "v5"] = Field(default="auto", description="output layout; auto tells by shape")
    threads: int = Field(default=2, ge=1, description="threads one inference may use")
    batch: int = Field(default=1, ge=1, description="frames per inference, when the model's batch is dynamic")
    imgsz: int | None = Field(default=None, ge=32, description="input side, when the model's size is dynamic")


@dataclass(frozen=True)
class ModelInfo:
    """What the ONNX file declares, checked: one NCHW 3-channel input, a rank-3 first output."""

    path: Path
    batch: int | None  # None: dynamic
    size: tuple[int, int] | None  # (width, height); None: dynamic
    dtype: str  # of the input: "float32" or "float16"
    names: list[str] | None  # from the metadata


class Runner(Protocol):
    """A loaded model on some runtime: one input tensor in, the first output out. Not thread-safe."""

    def run(self, tensor: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None  # strings and None are dynamic


def metadata_names(raw: str | None) -> list[str] | None:
    """Class names from Ultralytics' ``names`` metadata: a Python literal dict {index: name} or list."""
    if not raw:
        return None
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return None
    if isinstance(value, dict):
        return [str(value[k]) for k in sorted(value)]
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return None


def open_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session for ``path``, or a ``ConfigError`` naming the file."""
    import onnxruntime as ort  # type: ignore[import-untyped]

    if not path.is_file():
        raise ConfigError(f"model file {path} not found")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # Camera decoders share these cores: idle inference threads must sleep, not spin.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        reason = str(exc).rpartition("failed:")[2].strip() or type(exc).__name__
        raise ConfigError(f"{path} is not an ONNX model onnxruntime can load ({reason})") from exc


def inspect_session(session: Any, path: Path) -> ModelInfo:
    """Check the declared input and output of a YOLO detection model."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    expected_in = "expected one image input [batch, 3, height, width] of float"
    if len(inputs) != 1:
        raise ConfigError(f"{path}: the model has {len(inputs)} inputs; {expected_in}")
    shape, kind = list(inputs[0].shape), inputs[0].type
    if len(shape) != 4 or _dim(shape[1]) not in (3, None) or kind not in ("tensor(float)", "tensor(float16)"):
        raise ConfigError(f"{path}: input {inputs[0].name!r} is {kind} {shape}; {expected_in}")
    out_shape = list(outputs[0].shape)
    if len(out_shape) != 3:
        raise ConfigError(
            f"{path}: output {outputs[0].name!r} has shape {out_shape}; expected a YOLO detection output "
            "[batch, 4+classes, boxes] (YOLOv8/YOLO11) or [batch, boxes, 5+classes] (YOLOv5)"
        )
    height, width = _dim(shape[2]), _dim(shape[3])
    names = metadata_names(session.get_modelmeta().custom_metadata_map.get("names"))
    return ModelInfo(
        path=path,
        batch=_dim(shape[0]),
        size=(width, height) if width and height else None,
        dtype="float16" if kind == "tensor(float16)" else "float32",
        names=names,
    )


class OnnxRuntimeRunner:
    def __init__(self, session: Any) -> None:
        self.session = session
        self.input = session.get_inputs()[0].name
        self.output = session.get_outputs()[0].name

    def run(self, tensor: np.ndarray) -> np.ndarray:
        result: np.ndarray = self.session.run([self.output], {self.input: tensor})[0]
        return result

    def close(self) -> None:
        self.session = None


@dataclass
class LoadedModel:
    """A warmed-up model with its decoding settings; its methods run on the worker thread."""

    runner: Runner
    spec: DecodeSpec
    labels: tuple[str, ...]  # every mapped label; ``spec.groups`` index into it
    reported: tuple[str, ...]  # the labels it can report (``keep`` applied)
    size: tuple[int, int]  # (width, height)
    batch: int
    static_batch: bool
    buffer: InputBuffer  # the input tensor, reused call after call

    def detect(self, images: Sequence[np.ndarray | None]) -> list[list[Detection]]:
        results: list[list[Detection]] = [[] for _ in images]
        todo = [(i, image) for i, image in enumerate(images) if image is not None]  # no pixels, nothing found
        for first in range(0, len(todo), self.batch):
            chunk = todo[first : first + self.batch]
            boxes = [self.buffer.put(k, as_bgr(image)) for k, (_, image) in enumerate(chunk)]
            if self.static_batch:  # a fixed batch dimension must be filled: grey images
                for k in range(len(chunk), self.batch):
                    self.buffer.blank(k)
            tensor = self.buffer.tensor if self.static_batch else self.buffer.tensor[: len(chunk)]
            output = self.runner.run(tensor)
            for k, ((index, _), box) in enumerate(zip(chunk, boxes, strict=True)):
                results[index] = self.detections(output[k], box)
        return results

    def detections(self, output: np.ndarray, box: Letterbox) -> list[Detection]:
        from .yolo_decode import postprocess

        boxes, scores, groups = postprocess(output, self.spec, box)
        return [
            Detection(
                box=Box(x1=float(b[0]), y1=float(b[1]), x2=float(b[2]), y2=float(b[3])),
                label=self.labels[g],
                score=min(1.0, max(0.0, float(s))),
            )
            for b, s, g in zip(boxes, scores, groups.tolist(), strict=True)
        ]


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Frames are BGR; accept grey and BGRA too rather than fail on an odd camera."""
    import cv2

    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


class YoloDetector(Detector):
    """YOLO object detection on ONNX Runtime (CPU). ``labels`` and ``input_size`` come from the model file."""

    kind = "yolo"
    Config = YoloConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        self._model: LoadedModel | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def options(self) -> YoloConfig:
        assert isinstance(self.config, YoloConfig)
        return self.config

    def preflight(self) -> list[tuple[str, str]]:
        path = self.context.resolve(self.options.model)
        return [] if path.is_file() else [("model", f"model file {path} not found")]

    async def start(self) -> None:
        await self.stop()
        path = self.context.resolve(self.options.model)
        # One worker thread per detector: inference is serial per model and never blocks the loop.
        executor = ThreadPoolExecutor(1, thread_name_prefix=f"detector-{self.name}")
        try:
            info, runner = await self._load(path, executor)
            model = await asyncio.get_running_loop().run_in_executor(executor, self._prepare, info, runner)
        except BaseException:
            executor.shutdown(wait=False, cancel_futures=True)
            raise
        self._model, self._executor = model, executor
        # A user-supplied model only knows them once loaded.
        self.labels, self.input_size = model.reported, model.size
        self.log.info(
            "%s: %s layout, %d classes, input %dx%d, batch %d, labels %s",
            path.name,
            model.spec.layout,
            len(model.spec.thresholds),
            *model.size,
            model.batch,
            ", ".join(model.reported),
        )

    async def _load(self, path: Path, executor: ThreadPoolExecutor) -> tuple[ModelInfo, Runner]:
        """Open the model on this detector's runtime (overridden by the TensorRT detector)."""

        def load() -> tuple[ModelInfo, Runner]:
            session = open_session(path, self.options.threads)
            return inspect_session(session, path), OnnxRuntimeRunner(session)

        return await asyncio.get_running_loop().run_in_executor(executor, load)

    def _prepare(self, info: ModelInfo, runner: Runner) -> LoadedModel:
        """Warm up once, check the real output shape, and settle names, thresholds and labels."""
        try:
            return self._prepare_or_raise(info, runner)
        except BaseException:
            runner.close()
            raise

    def _prepare_or_raise(self, info: ModelInfo, runner: Runner) -> LoadedModel:
        import numpy as np

        from .yolo_decode import InputBuffer, resolve_layout

        opts = self.options
        names = opts.classes or info.names
        side = opts.imgsz or DEFAULT_SIZE
        size = info.size or (side, side)
        batch = info.batch or opts.batch
        warm = np.full((batch, 3, size[1], size[0]), 114 / 255, dtype=info.dtype)
        output = runner.run(warm)
        try:
            layout, count = resolve_layout(output.shape, opts.layout, len(names) if names else None)
        except ValueError as exc:
            raise ConfigError(f"{info.path}: {exc}") from None
        if output.shape[0] != batch:
            raise ConfigError(f"{info.path}: a batch of {batch} gave an output of shape {list(output.shape)}")
        if names and len(names) != count:
            source = "the config's classes list" if opts.classes else "the model's metadata"
            raise ConfigError(
                f"{info.path}: the model has {count} classes as a {layout} output but {source} names {len(names)}"
            )
        names = names or [f"class{i}" for i in range(count)]
        labels = tuple(dict.fromkeys(opts.label_map.get(n, n) for n in names))
        return LoadedModel(
            runner=runner,
            spec=self._spec(info.path, layout, names),
            labels=labels,
            reported=tuple(label for label in labels if opts.keep is None or label in opts.keep),
            size=size,
            batch=batch,
            static_batch=info.batch is not None,
            buffer=InputBuffer(batch, size, info.dtype),
        )

    def _spec(self, path: Path, layout: Literal["v8", "v5"], names: list[str]) -> DecodeSpec:
        import numpy as np

        from .yolo_decode import DecodeSpec

        opts = self.options
        mapped = [opts.label_map.get(n, n) for n in names]
        labels = list(dict.fromkeys(mapped))
        known = f"classes: {', '.join(names)}"
        for key in opts.label_map:
            if key not in names:
                raise ConfigError(f"label_map: {key!r} is not a class of {path} ({known})")
        for key in opts.class_confidence:
            if key not in names and key not in labels:
                raise ConfigError(f"class_confidence: {key!r} is neither a class of {path} nor a mapped label")
        for key in opts.keep or ():
            if key not in labels:
                raise ConfigError(f"keep: {key!r} is not a label of {path} (labels: {', '.join(labels)})")
        thresholds = np.array(
            [
                opts.class_confidence.get(name, opts.class_confidence.get(label, opts.confidence))
                if opts.keep is None or label in opts.keep
                else np.inf  # dropped before NMS, so it costs nothing
                for name, label in zip(names, mapped, strict=True)
            ],
            dtype=np.float64,
        )
        groups = np.array([labels.index(label) for label in mapped], dtype=np.intp)
        return DecodeSpec(layout=layout, thresholds=thresholds, groups=groups, iou=opts.iou)

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        model, executor = self._model, self._executor
        if model is None or executor is None:
            raise RuntimeError(f"detector {self.name!r} is not started")
        if not frames:
            return []
        images = [frame.image for frame in frames]
        return await asyncio.get_running_loop().run_in_executor(executor, model.detect, images)

    async def stop(self) -> None:
        model, executor = self._model, self._executor
        self._model = self._executor = None
        if executor is not None:
            # Waits for an inference in flight (its caller may have been cancelled) off the loop.
            await asyncio.to_thread(executor.shutdown, True)
        if model is not None:
            model.runner.close()


@hookimpl
def campusguard_register_detectors(registry: Registry[Detector]) -> None:
    registry.add(YoloDetector)
