"""TensorRT engines for ONNX models: availability, building, caching and running.

Needs only the ``tensorrt`` wheel and an NVIDIA driver: device memory and streams go through the
CUDA driver library (``libcuda.so.1``, installed with the driver) by ctypes, so neither pycuda nor
cuda-python nor torch is required. It imports nothing from campusguard, so ``bench/tensorrt_check.py``
can load this file by path on a machine where campusguard is not installed.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import os
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

INSTALL_HINT = "install campusguard[gpu] (the tensorrt-cu12 10.x wheel) on a machine with an NVIDIA GPU and driver"
# Part of every engine's cache key: bump it when the way engines are built changes (flags, profiles).
RECIPE = 2
CU_STREAM_NON_BLOCKING = 1  # no implicit sync with the legacy default stream (a build in another thread)
CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 75, 76


class EngineError(RuntimeError):
    """TensorRT or CUDA refused: the message says what and about which file."""


def _c(*types: Any) -> list[Any]:
    return list(types)


_SIGNATURES: dict[str, list[Any]] = {
    "cuInit": _c(ctypes.c_uint),
    "cuDeviceGetCount": _c(ctypes.POINTER(ctypes.c_int)),
    "cuDeviceGet": _c(ctypes.POINTER(ctypes.c_int), ctypes.c_int),
    "cuDeviceGetName": _c(ctypes.c_char_p, ctypes.c_int, ctypes.c_int),
    "cuDeviceGetAttribute": _c(ctypes.POINTER(ctypes.c_int), ctypes.c_int, ctypes.c_int),
    "cuDevicePrimaryCtxRetain": _c(ctypes.POINTER(ctypes.c_void_p), ctypes.c_int),
    "cuCtxSetCurrent": _c(ctypes.c_void_p),
    "cuMemAlloc_v2": _c(ctypes.POINTER(ctypes.c_uint64), ctypes.c_size_t),
    "cuMemFree_v2": _c(ctypes.c_uint64),
    "cuMemcpyHtoDAsync_v2": _c(ctypes.c_uint64, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p),
    "cuMemcpyDtoHAsync_v2": _c(ctypes.c_void_p, ctypes.c_uint64, ctypes.c_size_t, ctypes.c_void_p),
    "cuStreamCreate": _c(ctypes.POINTER(ctypes.c_void_p), ctypes.c_uint),
    "cuStreamSynchronize": _c(ctypes.c_void_p),
    "cuStreamDestroy_v2": _c(ctypes.c_void_p),
    "cuGetErrorString": _c(ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)),
}


class CudaDriver:
    """The few CUDA driver calls this module needs, on device 0's primary context (TensorRT's too)."""

    def __init__(self) -> None:
        try:
            self._lib = ctypes.CDLL("libcuda.so.1")  # ctypes releases the GIL during each call
        except OSError as exc:
            raise EngineError(f"no NVIDIA driver ({exc})") from None
        for name, argtypes in _SIGNATURES.items():
            function = getattr(self._lib, name)
            function.argtypes, function.restype = argtypes, ctypes.c_int
        self._check(self._lib.cuInit(0), "cuInit")
        count = ctypes.c_int()
        self._check(self._lib.cuDeviceGetCount(ctypes.byref(count)), "cuDeviceGetCount")
        if count.value < 1:
            raise EngineError("no CUDA device")
        device = ctypes.c_int()
        self._check(self._lib.cuDeviceGet(ctypes.byref(device), 0), "cuDeviceGet")
        self._device = device.value
        label = ctypes.create_string_buffer(256)
        self._check(self._lib.cuDeviceGetName(label, 256, self._device), "cuDeviceGetName")
        self.device_name = label.value.decode(errors="replace")
        self.compute_capability = ".".join(
            str(self._attribute(code, "cuDeviceGetAttribute"))
            for code in (CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)
        )
        context = ctypes.c_void_p()
        self._check(self._lib.cuDevicePrimaryCtxRetain(ctypes.byref(context), self._device), "cuDevicePrimaryCtxRetain")
        self._context = context  # retained for the life of the process, like the CUDA runtime does

    def _check(self, code: int, call: str) -> None:
        if code != 0:
            text = ctypes.c_char_p()
            self._lib.cuGetErrorString(code, ctypes.byref(text))
            raise EngineError(f"CUDA {call} failed: {(text.value or b'').decode()} (error {code})")

    def _attribute(self, code: int, call: str) -> int:
        value = ctypes.c_int()
        self._check(self._lib.cuDeviceGetAttribute(ctypes.byref(value), code, self._device), call)
        return value.value

    def bind(self) -> None:
        """Make the primary context current on this thread (each thread starts with none)."""
        self._check(self._lib.cuCtxSetCurrent(self._context), "cuCtxSetCurrent")

    def malloc(self, size: int) -> int:
        pointer = ctypes.c_uint64()
        self._check(self._lib.cuMemAlloc_v2(ctypes.byref(pointer), max(size, 1)), "cuMemAlloc")
        return pointer.value

    def free(self, pointer: int) -> None:
        self._check(self._lib.cuMemFree_v2(pointer), "cuMemFree")

    def stream(self) -> int:
        handle = ctypes.c_void_p()
        self._check(self._lib.cuStreamCreate(ctypes.byref(handle), CU_STREAM_NON_BLOCKING), "cuStreamCreate")
        return handle.value or 0

    def destroy_stream(self, stream: int) -> None:
        self._check(self._lib.cuStreamDestroy_v2(stream), "cuStreamDestroy")

    def to_device(self, pointer: int, array: np.ndarray, stream: int) -> None:
        self._check(self._lib.cuMemcpyHtoDAsync_v2(pointer, array.ctypes.data, array.nbytes, stream), "cuMemcpyHtoD")

    def to_host(self, array: np.ndarray, pointer: int, stream: int) -> None:
        self._check(self._lib.cuMemcpyDtoHAsync_v2(array.ctypes.data, pointer, array.nbytes, stream), "cuMemcpyDtoH")

    def synchronize(self, stream: int) -> None:
        self._check(self._lib.cuStreamSynchronize(stream), "cuStreamSynchronize")


_DRIVER_LOCK = threading.Lock()
_DRIVER: CudaDriver | None = None


def cuda() -> CudaDriver:
    """The process's one driver handle, opened on first use."""
    global _DRIVER
    with _DRIVER_LOCK:
        if _DRIVER is None:
            _DRIVER = CudaDriver()
        return _DRIVER


def tensorrt() -> Any:
    """The ``tensorrt`` module (untyped, so it stays ``Any``)."""
    return importlib.import_module("tensorrt")


_LOGGER: Any = None


def trt_logger() -> Any:
    """TensorRT keeps one logger per process (it warns when builders and runtimes bring others)."""
    global _LOGGER
    with _DRIVER_LOCK:
        if _LOGGER is None:
            trt = tensorrt()
            _LOGGER = trt.Logger(trt.Logger.WARNING)
        return _LOGGER


@cache
def availability() -> tuple[bool, str]:
    """Whether TensorRT can run here, and why not (or on what)."""
    problems, device = [], ""
    try:
        device = cuda().device_name
    except EngineError as exc:
        problems.append(f"no CUDA device: {exc}")
    try:
        version = tensorrt().__version__
    except ImportError as exc:
        problems.append(f"tensorrt not installed ({exc})")
    except Exception as exc:  # a broken install: missing libnvinfer, CUDA mismatch
        problems.append(f"tensorrt does not import ({type(exc).__name__}: {exc})")
    if problems:
        return False, "; ".join(problems) + f"; {INSTALL_HINT}"
    return True, f"TensorRT {version} on {device}"


def engine_file(onnx: Path, cache_dir: Path, *, fp16: bool, batch: int, size: tuple[int, int]) -> Path:
    """Where the engine for these inputs lives: keyed by the ONNX bytes, TensorRT version, GPU and shape."""
    digest = hashlib.sha256()
    with onnx.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    device = cuda()
    key = (
        f"{digest.hexdigest()}|{tensorrt().__version__}|{device.device_name}|sm{device.compute_capability}"
        f"|fp16={fp16}|{batch}x{size}|recipe{RECIPE}"
    )
    return cache_dir / f"{onnx.stem}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.engine"


def build_engine(
    onnx: Path, target: Path, *, fp16: bool, batch: int, size: tuple[int, int], log: Callable[[str], None] = print
) -> None:
    """Build a serialized engine for ``onnx`` into ``target`` (atomically). Takes seconds to minutes.

    Every failure is an :class:`EngineError` naming the file: TensorRT's own raise ``TypeError`` (a
    builder it could not create: CUDA did not initialise) or ``RuntimeError`` (a refused profile).
    """
    try:
        _build(onnx, target, fp16=fp16, batch=batch, size=size, log=log)
    except EngineError:
        raise
    except Exception as exc:
        raise EngineError(f"{onnx}: TensorRT failed to build an engine ({type(exc).__name__}: {exc})") from exc


def _build(
    onnx: Path, target: Path, *, fp16: bool, batch: int, size: tuple[int, int], log: Callable[[str], None]
) -> None:
    trt = tensorrt()
    cuda().bind()
    logger = trt_logger()
    builder = trt.Builder(logger)
    major = int(str(trt.__version__).split(".")[0])
    # TensorRT 10+ networks are always explicit-batch; 8.x needs the flag.
    flags = 0 if major >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"{onnx}: TensorRT's ONNX parser refused the model: {errors}")
    config = builder.create_builder_config()
    if fp16:
        flag = getattr(trt.BuilderFlag, "FP16", None)
        if flag is None:
            raise EngineError(f"fp16: TensorRT {trt.__version__} removed the FP16 flag; export the ONNX in FP16")
        config.set_flag(flag)
    image = network.get_input(0)
    declared = tuple(image.shape)
    if any(d < 0 for d in declared):  # dynamic dimensions need a profile: batch 1..batch at this size

        def shape(n: int) -> tuple[int, ...]:
            return (n if declared[0] < 0 else declared[0], 3, size[1], size[0])

        profile = builder.create_optimization_profile()
        profile.set_shape(image.name, shape(1), shape(batch), shape(batch))
        if config.add_optimization_profile(profile) < 0:
            raise EngineError(f"{onnx}: TensorRT refused the input profile {shape(1)} to {shape(batch)}")
    log(f"building a TensorRT {trt.__version__} engine for {onnx.name} (fp16={fp16}, batch {batch}, {size})")
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise EngineError(f"{onnx}: TensorRT could not build an engine (see its log above)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    with partial.open("wb") as f:
        f.write(memoryview(plan))
    os.replace(partial, target)


class TrtRunner:
    """One engine, one execution context, one stream. Use it from one thread at a time."""

    def __init__(self, engine: Path, batch: int, size: tuple[int, int]) -> None:
        self._cuda = cuda()
        self._buffers: dict[str, int] = {}
        self._stream = 0
        try:
            self._open(engine, batch, size)
        except BaseException as exc:
            self.close()  # what was allocated before the failure
            if isinstance(exc, EngineError) or not isinstance(exc, Exception):
                raise
            raise EngineError(f"{engine}: TensorRT could not run this engine ({type(exc).__name__}: {exc})") from exc

    def _open(self, engine: Path, batch: int, size: tuple[int, int]) -> None:
        trt = tensorrt()
        self._cuda.bind()
        self._runtime = trt.Runtime(trt_logger())
        self._engine = self._runtime.deserialize_cuda_engine(engine.read_bytes())
        if self._engine is None:
            raise EngineError(f"{engine}: TensorRT could not load this engine; delete the file to rebuild it")
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"{engine}: TensorRT could not create an execution context (GPU memory?)")
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._outputs = [n for n in names if n not in inputs]
        self._input = inputs[0]
        self._dtypes = {}
        for name in names:
            kind = self._engine.get_tensor_dtype(name)
            try:
                self._dtypes[name] = np.dtype(trt.nptype(kind))
            except TypeError:  # BF16, FP8, INT4: no numpy type
                raise EngineError(f"{engine}: tensor {name!r} is {kind}, which numpy cannot hold") from None
        # Buffers for the largest batch, bound once: later runs only copy and enqueue.
        self._shape: tuple[int, ...] = (batch, 3, size[1], size[0])
        self._set_input_shape(self._shape)
        self._stream = self._cuda.stream()
        for name in names:
            shape = self._shape if name == self._input else tuple(self._context.get_tensor_shape(name))
            self._buffers[name] = self._cuda.malloc(int(np.prod(shape)) * self._dtypes[name].itemsize)
            self._context.set_tensor_address(name, self._buffers[name])
        self._capacity = int(np.prod(self._shape)) * self._dtypes[self._input].itemsize

    def _set_input_shape(self, shape: tuple[int, ...]) -> None:
        # TensorRT returns False (and only logs) for a shape outside the engine's profile.
        if not self._context.set_input_shape(self._input, shape):
            raise EngineError(f"TensorRT refused input shape {list(shape)} for {self._input!r} (outside its profile)")

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """The first output for ``tensor`` (NCHW, at most the batch given at construction)."""
        self._cuda.bind()
        tensor = np.ascontiguousarray(tensor, dtype=self._dtypes[self._input])
        if tensor.nbytes > self._capacity:  # the device buffer was sized for the largest batch
            raise EngineError(f"input {list(tensor.shape)} exceeds the engine's buffers ({self._capacity} bytes)")
        if tensor.shape != self._shape:
            self._set_input_shape(tensor.shape)
            self._shape = tensor.shape
        name = self._outputs[0]
        output = np.empty(tuple(self._context.get_tensor_shape(name)), dtype=self._dtypes[name])
        self._cuda.to_device(self._buffers[self._input], tensor, self._stream)
        if not self._context.execute_async_v3(self._stream):
            raise EngineError("TensorRT inference failed (see its log above)")
        self._cuda.to_host(output, self._buffers[name], self._stream)
        self._cuda.synchronize(self._stream)
        return output.astype(np.float32, copy=False)

    def close(self) -> None:
        """Free everything; safe after a failed construction and when called twice."""
        buffers, self._buffers = self._buffers, {}
        stream, self._stream = self._stream, 0
        try:
            if buffers or stream:
                self._cuda.bind()
            if stream:
                self._cuda.synchronize(stream)
        finally:
            for pointer in buffers.values():
                self._cuda.free(pointer)
            if stream:
                self._cuda.destroy_stream(stream)
            # Context before engine before runtime, as TensorRT requires.
            self._context = self._engine = self._runtime = None
