"""YOLO on TensorRT (extra ``gpu``): the ``yolo`` detector's ONNX models, built into cached engines.

Same options, decoding and labels as ``yolo`` (ONNX Runtime); only the runtime differs. The first
start builds the engine in the background (minutes for a large model) and reports ``NotReady`` until
it is cached, so the core retries instead of timing out; later starts load it in a second. Without
an NVIDIA GPU or the ``tensorrt`` package the plugin still registers, and ``start()`` fails with the
reason (see :func:`availability`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from pydantic import Field

from campusguard.sdk import ConfigError, Detector, NotReady, Registry, hookimpl

from .yolo import DEFAULT_SIZE, ModelInfo, Runner, YoloConfig, YoloDetector, inspect_session, open_session

BUILD_WAIT = 20.0  # seconds start() waits for a first build before NotReady (the core's start timeout is 30)


class TensorRTConfig(YoloConfig):
    engine_cache: Path | None = Field(default=None, description="folder for built engines; default <data dir>/tensorrt")
    fp16: bool = Field(default=False, description="let TensorRT use FP16 kernels (TensorRT 10; faster, less exact)")


def availability() -> tuple[bool, str]:
    """``(True, "TensorRT 10.x on <GPU>")`` or ``(False, why)``; imports tensorrt, so call it lazily."""
    from .tensorrt_engine import availability as check

    return check()


_BUILDS: dict[Path, Future[None]] = {}
_BUILDS_LOCK = threading.Lock()


def _build_once(
    onnx: Path, target: Path, *, fp16: bool, batch: int, size: tuple[int, int], log: Callable[[str], None]
) -> Future[None]:
    """One build per engine file, in a daemon thread that outlives a timed-out start (and the retries).

    A build that failed after its start stopped waiting is handed to the next start, which raises its
    error (and forgets it, so that a start after that builds again): never silently rebuilt forever.
    """
    from .tensorrt_engine import build_engine

    with _BUILDS_LOCK:
        future = _BUILDS.get(target)
        if future is not None:
            if future.done() and future.exception() is not None:
                del _BUILDS[target]
            return future
        future = _BUILDS[target] = Future()

    def build() -> None:
        try:
            build_engine(onnx, target, fp16=fp16, batch=batch, size=size, log=log)
        except BaseException as exc:
            future.set_exception(exc)
        else:
            future.set_result(None)

    threading.Thread(target=build, name=f"tensorrt-build-{target.stem}", daemon=True).start()
    return future


class YoloTensorRTDetector(YoloDetector):
    """YOLO object detection on TensorRT. Detections match ``yolo`` on ONNX Runtime within FP32/TF32 error."""

    kind = "yolo_tensorrt"
    Config = TensorRTConfig

    async def _load(self, path: Path, executor: ThreadPoolExecutor) -> tuple[ModelInfo, Runner]:
        from .tensorrt_engine import EngineError, TrtRunner, engine_file

        ok, reason = await asyncio.to_thread(availability)
        if not ok:
            raise ConfigError(f"yolo_tensorrt unavailable: {reason}")
        opts = self.config
        assert isinstance(opts, TensorRTConfig)
        loop = asyncio.get_running_loop()

        def inspect() -> tuple[ModelInfo, int, tuple[int, int], Path]:
            # onnxruntime reads the names and checks the shapes, with the same errors as ``yolo``.
            info = inspect_session(open_session(path, 1), path)
            side = opts.imgsz or DEFAULT_SIZE
            batch, size = info.batch or opts.batch, info.size or (side, side)
            cache = self.context.resolve(opts.engine_cache) if opts.engine_cache else self.context.data_dir / "tensorrt"
            return info, batch, size, engine_file(path, cache, fp16=opts.fp16, batch=batch, size=size)

        info, batch, size, target = await loop.run_in_executor(executor, inspect)
        try:
            if not target.exists():
                build = _build_once(path, target, fp16=opts.fp16, batch=batch, size=size, log=self._log_build)
                try:
                    await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(build)), BUILD_WAIT)
                except TimeoutError:
                    raise NotReady(f"building the TensorRT engine for {path} into {target}") from None
            runner: Runner = await loop.run_in_executor(executor, TrtRunner, target, batch, size)
        except EngineError as exc:
            raise ConfigError(str(exc)) from None
        return info, runner

    def _log_build(self, message: str) -> None:
        self.log.info("%s", message)


@hookimpl
def campusguard_register_detectors(registry: Registry[Detector]) -> None:
    registry.add(YoloTensorRTDetector)
