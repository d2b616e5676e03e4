"""The YOLO detector on ONNX Runtime, against ONNX graphs with planted outputs (no weights, exact boxes).

A planted graph writes known values into a zero tensor with ScatterND and broadcasts it over the
input's batch: the decoder, the letterbox and the label handling are checked exactly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from campusguard.detectors import yolo as yolo_module
from campusguard.detectors.yolo import YoloDetector
from campusguard.detectors.yolo_decode import InputBuffer, letterbox, resolve_layout, to_tensor
from campusguard.sdk import Detection, Frame
from campusguard.sdk.testing.conformance import DetectorConformance
from campusguard.sdk.testing.stubs import make_context

SIZE = 640


@dataclass
class Planted:
    """One box in the model's (letterboxed) input pixels, with its class scores."""

    cx: float
    cy: float
    w: float
    h: float
    scores: dict[int, float] = field(default_factory=dict)
    objectness: float = 1.0  # v5 only


def planted_model(
    path: Path,
    boxes: list[Planted],
    classes: int,
    *,
    layout: str = "v8",
    names: list[str] | None = None,
    anchors: int = 8400,
    batch: int | str = 1,
    output_shape: list[int] | None = None,
) -> Path:
    """An ONNX model whose output is ``boxes`` in the given layout, for any input image."""
    v8 = layout == "v8"
    rows, cols = (4 + classes, anchors) if v8 else (anchors, 5 + classes)
    indices: list[list[int]] = []
    values: list[float] = []
    for j, box in enumerate(boxes):
        cells = {0: box.cx, 1: box.cy, 2: box.w, 3: box.h}
        if v8:
            cells.update({4 + c: s for c, s in box.scores.items()})
        else:
            cells.update({4: box.objectness, **{5 + c: s for c, s in box.scores.items()}})
        for column, value in cells.items():
            indices.append([column, j] if v8 else [j, column])
            values.append(value)
    shape = output_shape or [rows, cols]
    nodes = [
        helper.make_node("ConstantOfShape", ["plane_shape"], ["zeros"], value=helper.make_tensor("v", 1, [1], [0.0])),
        helper.make_node("ScatterND", ["zeros", "idx", "upd"], ["plane"]) if values else None,
        helper.make_node("Shape", ["images"], ["in_shape"], start=0, end=1),
        helper.make_node("Concat", ["in_shape", "plane_shape"], ["out_shape"], axis=0),
        helper.make_node("Expand", ["plane" if values else "zeros", "out_shape"], ["output0"]),
    ]
    inits = [helper.make_tensor("plane_shape", TensorProto.INT64, [len(shape)], shape)]
    if values:
        inits += [
            helper.make_tensor("idx", TensorProto.INT64, [len(indices), 2], np.array(indices).ravel().tolist()),
            helper.make_tensor("upd", TensorProto.FLOAT, [len(values)], values),
        ]
    graph = helper.make_graph(
        [n for n in nodes if n is not None],
        "planted",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [batch, *shape])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    if names is not None:
        helper.set_model_props(model, {"names": repr(dict(enumerate(names)))})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def to_input(frame_w: int, frame_h: int, x1: float, y1: float, x2: float, y2: float) -> tuple[float, ...]:
    """A box in frame pixels as cx, cy, w, h in the 640x640 letterboxed input (written independently)."""
    r = min(SIZE / frame_w, SIZE / frame_h)
    pad_x, pad_y = (SIZE - round(frame_w * r)) // 2, (SIZE - round(frame_h * r)) // 2
    a, b, c, d = x1 * r + pad_x, y1 * r + pad_y, x2 * r + pad_x, y2 * r + pad_y
    return ((a + c) / 2, (b + d) / 2, c - a, d - b)


def frame(width: int = 1280, height: int = 720, sequence: int = 0) -> Frame:
    image = np.random.default_rng(sequence).integers(0, 255, (height, width, 3), dtype=np.uint8)
    return Frame(camera_id="cam", sequence=sequence, width=width, height=height, image=image)


async def run(tmp_path: Path, model: Path, frames: list[Frame], **options: Any) -> list[list[Detection]]:
    config = YoloDetector.Config.model_validate({"model": str(model), **options})
    detector = YoloDetector("weapons", config, make_context("weapons", tmp_path))
    await detector.start()
    try:
        return await detector.detect(frames)
    finally:
        await detector.stop()


def coords(d: Detection) -> tuple[float, float, float, float]:
    return (d.box.x1, d.box.y1, d.box.x2, d.box.y2)


# -- geometry ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("width", "height"), [(1280, 720), (480, 640), (1920, 1080), (641, 479)])
async def test_v8_boxes_come_back_in_the_frames_pixels(tmp_path: Path, width: int, height: int) -> None:
    wanted = [(100.0, 200.0, 300.0, 600.0), (0.0, 0.0, 50.0, 40.0), (width - 120.0, height - 90.0, width, height)]
    wanted = [(x1, min(y1, height - 50), x2, min(y2, height)) for x1, y1, x2, y2 in wanted]
    planted = [Planted(*to_input(width, height, *b), scores={i % 2: 0.9 - i / 10}) for i, b in enumerate(wanted)]
    model = planted_model(tmp_path / "m.onnx", planted, 2, names=["gun", "knife"])
    [found] = await run(tmp_path, model, [frame(width, height)])
    assert [d.label for d in found] == ["gun", "knife", "gun"]  # best first
    assert [d.score for d in found] == pytest.approx([0.9, 0.8, 0.7])
    for got, want in zip(found, wanted, strict=True):
        # Ultralytics' rounding of an odd padding pixel shifts the box by at most half a pixel.
        assert coords(got) == pytest.approx(want, abs=0.5 if (width, height) == (641, 479) else 1e-3)


async def test_boxes_are_clipped_to_the_frame_and_padding_only_boxes_dropped(tmp_path: Path) -> None:
    # 1280x720 fills 640x360 of the input, padded 140 px above and below.
    planted = [
        Planted(620, 320, 80, 40, {0: 0.9}),  # crosses the right edge → clipped at x = 1280
        Planted(320, 60, 100, 60, {0: 0.8}),  # wholly in the top padding → dropped
    ]
    [found] = await run(tmp_path, planted_model(tmp_path / "m.onnx", planted, 1), [frame()])
    assert [coords(d) for d in found] == [pytest.approx((1160, 320, 1280, 400))]


async def test_v5_layout_multiplies_objectness_and_class_score(tmp_path: Path) -> None:
    planted = [
        Planted(*to_input(1280, 720, 100, 100, 200, 300), {1: 0.5}, objectness=0.9),  # 0.45: kept
        Planted(*to_input(1280, 720, 600, 100, 700, 300), {0: 0.9}, objectness=0.2),  # 0.18: below 0.25
    ]
    model = planted_model(tmp_path / "m.onnx", planted, 3, layout="v5", anchors=25200, names=["a", "b", "c"])
    [found] = await run(tmp_path, model, [frame()])
    assert [(d.label, round(d.score, 4)) for d in found] == [("b", 0.45)]
    assert coords(found[0]) == pytest.approx((100, 100, 200, 300))
    forced = await run(tmp_path, model, [frame()], layout="v5")
    assert forced == [found]


# -- scores, NMS and labels --------------------------------------------------------------------------

NAMES = ["person", "gun", "knife"]


def box_at(x: float, score: dict[int, float], y: float = 320) -> Planted:
    return Planted(x, y, 60, 120, score)


async def test_per_class_thresholds(tmp_path: Path) -> None:
    planted = [box_at(100, {1: 0.3}), box_at(300, {2: 0.5}), box_at(500, {0: 0.2}), box_at(600, {0: 0.7})]
    model = planted_model(tmp_path / "m.onnx", planted, 3, names=NAMES)
    [found] = await run(tmp_path, model, [frame()], class_confidence={"knife": 0.6, "person": 0.5})
    assert sorted((d.label, round(d.score, 2)) for d in found) == [("gun", 0.3), ("person", 0.7)]
    [low] = await run(tmp_path, model, [frame()], confidence=0.1, class_confidence={"knife": 0.6})
    assert sorted(d.label for d in low) == ["gun", "person", "person"]


async def test_nms_merges_duplicates_of_one_label_only(tmp_path: Path) -> None:
    planted = [
        box_at(100, {1: 0.9}),
        box_at(104, {1: 0.6}),  # the same gun, seen by a neighbouring anchor
        box_at(300, {1: 0.8}),
        box_at(303, {2: 0.7}),  # a knife on the same spot: another class
        box_at(500, {0: 0.9}),
        box_at(525, {0: 0.85}),  # a second person beside the first: IoU 0.41, kept at 0.45
    ]
    model = planted_model(tmp_path / "m.onnx", planted, 3, names=NAMES)
    [found] = await run(tmp_path, model, [frame()])
    assert sorted((d.label, round(d.score, 2)) for d in found) == [
        ("gun", 0.8),
        ("gun", 0.9),
        ("knife", 0.7),
        ("person", 0.85),
        ("person", 0.9),
    ]
    [mapped] = await run(tmp_path, model, [frame()], label_map={"gun": "weapon", "knife": "weapon"})
    # NMS runs per reported label: the gun and the knife at x=300 are one weapon.
    assert sorted((d.label, round(d.score, 2)) for d in mapped) == [
        ("person", 0.85),
        ("person", 0.9),
        ("weapon", 0.8),
        ("weapon", 0.9),
    ]
    [tight] = await run(tmp_path, model, [frame()], iou=0.3)
    assert sorted(d.label for d in tight) == ["gun", "gun", "knife", "person"]


async def test_label_map_and_keep(tmp_path: Path) -> None:
    planted = [box_at(100, {1: 0.9}), box_at(300, {2: 0.7}), box_at(500, {0: 0.9})]
    model = planted_model(tmp_path / "m.onnx", planted, 3, names=NAMES)
    config = YoloDetector.Config.model_validate(
        {"model": str(model), "label_map": {"gun": "weapon", "knife": "weapon"}, "keep": ["weapon"]}
    )
    detector = YoloDetector("weapons", config, make_context("weapons", tmp_path))
    await detector.start()
    try:
        [found] = await detector.detect([frame()])
        assert detector.labels == ("weapon",)
        assert detector.input_size == (640, 640)
    finally:
        await detector.stop()
    assert sorted((d.label, round(d.score, 2)) for d in found) == [("weapon", 0.7), ("weapon", 0.9)]


async def test_class_names_from_metadata_config_or_index(tmp_path: Path) -> None:
    planted = [box_at(100, {0: 0.9}), box_at(300, {1: 0.8})]
    with_meta = planted_model(tmp_path / "meta.onnx", planted, 2, names=["pistol", "rifle"])
    without = planted_model(tmp_path / "bare.onnx", planted, 2)
    labels = [[d.label for d in found] for found in await run(tmp_path, with_meta, [frame()])]
    assert labels == [["pistol", "rifle"]]
    labels = [[d.label for d in found] for found in await run(tmp_path, with_meta, [frame()], classes=["a", "b"])]
    assert labels == [["a", "b"]]
    labels = [[d.label for d in found] for found in await run(tmp_path, without, [frame()])]
    assert labels == [["class0", "class1"]]


async def test_dynamic_batch_runs_frames_together_in_order(tmp_path: Path) -> None:
    model = planted_model(tmp_path / "m.onnx", [box_at(320, {0: 0.9})], 1, batch="batch", names=["gun"])
    frames = [frame(1280, 720, 0), Frame(camera_id="cam", sequence=1, width=4, height=4), frame(640, 480, 2)]
    calls: list[tuple[int, ...]] = []
    original = yolo_module.OnnxRuntimeRunner.run

    def spy(self: Any, tensor: np.ndarray) -> np.ndarray:
        calls.append(tensor.shape)
        assert threading.current_thread().name.startswith("detector-weapons"), "inference ran off its worker"
        return original(self, tensor)

    yolo_module.OnnxRuntimeRunner.run = spy  # type: ignore[method-assign]
    try:
        results = await run(tmp_path, model, frames, batch=2)
    finally:
        yolo_module.OnnxRuntimeRunner.run = original  # type: ignore[method-assign]
    assert calls[1:] == [(2, 3, 640, 640)]  # after the warm-up: both images in one call
    assert [len(r) for r in results] == [1, 0, 1]  # a frame without pixels finds nothing
    assert coords(results[0][0]) == pytest.approx((580, 240, 700, 480))
    assert coords(results[2][0]) == pytest.approx((290, 180, 350, 300))


# -- bad models and bad options -----------------------------------------------------------------------


def shape_model(path: Path, shape: list[int]) -> Path:
    graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["s"], ["out"], value=helper.make_tensor("v", 1, [1], [0.0]))],
        "odd",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)],
        [helper.make_tensor("s", TensorProto.INT64, [len(shape)], shape)],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return path


async def test_bad_models_are_setup_errors_naming_the_file_and_the_rest_runs(campusguard_core, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    text = tmp_path / "weapons.onnx"
    text.write_text("this is a README, not a model\n")
    flat = shape_model(tmp_path / "flat.onnx", [1, 7])
    narrow = shape_model(tmp_path / "narrow.onnx", [1, 3, 8400])
    good = planted_model(tmp_path / "good.onnx", [box_at(320, {0: 0.9})], 1, names=["gun"])
    config = "\n".join(
        f'[detectors.{name}]\ntype = "yolo"\nmodel = "{path}"\n'
        for name, path in [("text", text), ("flat", flat), ("narrow", narrow), ("good", good)]
    )
    config += f'[detectors.missing]\ntype = "yolo"\nmodel = "{tmp_path / "nowhere.onnx"}"\n'
    async with campusguard_core(config, entry_points=True) as core:
        errors = {name: core.error("detectors", name) for name in ("text", "flat", "narrow", "missing")}
        assert {name: core.state("detectors", name) for name in errors} == dict.fromkeys(errors, "setup_error")
        assert str(text) in errors["text"] and "is not an ONNX model" in errors["text"]
        assert "Protobuf parsing failed" in errors["text"]
        assert (
            str(flat) in errors["flat"] and "[1, 7]" in errors["flat"] and "[batch, 4+classes, boxes]" in errors["flat"]
        )
        assert str(narrow) in errors["narrow"] and "[1, 3, 8400]" in errors["narrow"]
        assert str(tmp_path / "nowhere.onnx") in errors["missing"] and "not found" in errors["missing"]
        assert core.state("detectors", "good") == "loaded"
        [found] = await core.component("detectors", "good").detect([frame()])  # type: ignore[attr-defined]
        assert [d.label for d in found] == ["gun"]


async def test_bad_options_name_the_model_and_its_classes(tmp_path: Path) -> None:
    model = planted_model(tmp_path / "m.onnx", [], 3, names=NAMES)
    cases = [
        ({"classes": ["a", "b"]}, "the model has 3 classes as a v8 output but the config's classes list names 2"),
        ({"label_map": {"pistol": "weapon"}}, "label_map: 'pistol' is not a class of"),
        ({"class_confidence": {"pistol": 0.5}}, "class_confidence: 'pistol' is neither a class"),
        ({"keep": ["weapon"]}, "keep: 'weapon' is not a label of"),
        ({"layout": "v5"}, "the model has 8395 classes as a v5 output but the model's metadata names 3"),
    ]
    for options, message in cases:
        with pytest.raises(Exception, match=message) as caught:
            await run(tmp_path, model, [frame()], **options)
        assert str(model) in str(caught.value)


# -- the pure functions ----------------------------------------------------------------------------------


def test_letterbox_centres_on_grey_and_records_how() -> None:
    image = np.full((720, 1280, 3), 7, dtype=np.uint8)
    boxed, box = letterbox(image, (640, 640))
    assert boxed.shape == (640, 640, 3)
    assert (box.left, box.top, box.scale_x, box.scale_y) == (0, 140, 0.5, 0.5)
    assert (boxed[:140] == 114).all() and (boxed[500:] == 114).all() and (boxed[140:500] == 7).all()
    same, unchanged = letterbox(np.zeros((640, 640, 3), np.uint8), (640, 640))
    assert same.shape == (640, 640, 3) and (unchanged.left, unchanged.top) == (0, 0)


def test_input_buffer_matches_letterbox_then_tensor_and_repaints_padding() -> None:
    rng = np.random.default_rng(0)
    buffer = InputBuffer(2, (640, 640))
    for shape in [(720, 1280, 3), (640, 480, 3), (479, 641, 3), (720, 1280, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        boxed, expected = letterbox(image, (640, 640))
        assert buffer.put(1, image) == expected
        assert np.abs(buffer.tensor[1] - to_tensor([boxed])[0]).max() < 1e-6
    buffer.blank(1)
    assert (buffer.tensor == np.float32(114 / 255)).all()


def test_resolve_layout() -> None:
    assert resolve_layout((1, 84, 8400), "auto", None) == ("v8", 80)
    assert resolve_layout((1, 25200, 85), "auto", None) == ("v5", 80)
    assert resolve_layout((1, 6, 8400), "auto", 2) == ("v8", 2)
    assert resolve_layout((1, 8400, 7), "auto", 2) == ("v5", 2)
    for bad in [(1, 7), (1, 4, 8400), (1, 84, 0)]:
        with pytest.raises(ValueError, match="expected"):
            resolve_layout(bad, "auto", None)


# -- the SDK's contract ---------------------------------------------------------------------------------


class TestYoloConformance(DetectorConformance):
    component_class = YoloDetector
    model: ClassVar[Path]

    @pytest.fixture(autouse=True)
    def _planted(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        path = tmp_path_factory.getbasetemp() / "conformance-yolo.onnx"
        if not path.exists():
            planted_model(path, [box_at(320, {0: 0.9})], 1, names=["gun"])
        type(self).model = path

    def valid_config(self) -> dict[str, Any]:
        return {"model": str(self.model)}
