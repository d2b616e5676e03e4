"""The shared detection stage: fair batching across cameras, priority after incidents, isolation."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from peers.rtsp import SAMPLE

from campusguard.core.pipeline.processor import FrameProcessor
from campusguard.core.pipeline.scheduler import DetectionScheduler
from campusguard.sdk import (
    OBSERVATIONS,
    Analyzer,
    Box,
    CameraSourceConfig,
    Detection,
    Detector,
    Frame,
    Observation,
    Registry,
    StageStamp,
    Track,
    Tracker,
    hookimpl,
)
from campusguard.sdk.testing import StubCore, make_context, make_frame, make_incident


@pytest.fixture(autouse=True)
def _fast_finds() -> None:
    Finds.delay = 0.0  # a test that slows the detector down never slows the next one


def person(x: float = 10) -> Detection:
    return Detection(box=Box(x1=x, y1=10, x2=x + 20, y2=60), label="person", score=0.9)


class Finds(Detector):
    kind = "finds"
    labels = ("person",)
    batches: ClassVar[list[list[str]]] = []
    delay: ClassVar[float] = 0.0  # a slow detector lets frames of several cameras queue up

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        Finds.batches.append([f.camera_id for f in frames])
        await asyncio.sleep(Finds.delay)
        return [[person()] for _ in frames]


class Raises(Detector):
    kind = "raises"

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        raise RuntimeError("model crashed")


class Hangs(Detector):
    kind = "hangs"

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        await asyncio.sleep(3600)
        return []


class OneTrackPerDetection(Tracker):
    kind = "simple"

    async def update(self, frame: Frame, detections: Sequence[Detection]) -> list[Track]:
        now = StageStamp.now()
        return [
            Track(track_id=i, camera_id=frame.camera_id, label=d.label, box=d.box, score=d.score,
                  first_seen=now, last_seen=now)
            for i, d in enumerate(detections)
        ]  # fmt: skip


class CountPeople(Analyzer):
    kind = "count"

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        return [
            Observation(
                kind="people", camera_id=frame.camera_id, confidence=1.0, track_ids=[t.track_id for t in tracks]
            )
        ]


class Broken(Analyzer):
    kind = "broken"

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        raise ValueError("analyzer bug")


def processor(tmp_path: Path, detectors: dict[str, Detector], cameras: dict[str, CameraSourceConfig] | None = None):  # type: ignore[no-untyped-def]
    core = StubCore(tmp_path, cameras=cameras or {})

    def build(cls, name):  # type: ignore[no-untyped-def]
        return cls(name, cls.Config(), make_context(name, tmp_path, core))

    analyzers = {"count": build(CountPeople, "count"), "broken": build(Broken, "broken")}
    tracker = build(OneTrackPerDetection, "simple")
    return core, FrameProcessor(core, lambda: detectors, lambda: {"simple": tracker}, lambda: analyzers, deadline=0.3)


async def test_failing_and_hanging_detectors_and_analyzers_only_cost_themselves(tmp_path: Path) -> None:
    ctx = make_context("x", tmp_path)
    detectors: dict[str, Detector] = {
        "finds": Finds("finds", Finds.Config(), ctx),
        "raises": Raises("raises", Raises.Config(), ctx),
        "hangs": Hangs("hangs", Hangs.Config(), ctx),
    }
    core, proc = processor(tmp_path, detectors)
    (result,) = await proc.process([make_frame(camera_id="gate")])
    assert [d.label for d in result.detections] == ["person"]
    assert [o.kind for o in result.observations] == ["people"] and result.observations[0].track_ids == [0]
    assert proc.failures == {"raises": 1, "hangs": 1, "broken": 1}
    assert [name for name, _ in core.bus.published] == [OBSERVATIONS.name]


async def test_frames_without_motion_skip_detection_and_keep_the_last_tracks(tmp_path: Path) -> None:
    Finds.batches.clear()
    _, proc = processor(tmp_path, {"finds": Finds("finds", Finds.Config(), make_context("f", tmp_path))})
    await proc.process([make_frame(camera_id="gate", motion=True)])
    (still,) = await proc.process([make_frame(camera_id="gate", motion=False)])
    assert Finds.batches == [["gate"]]  # the still frame never reached the detector
    assert not still.detected and [t.track_id for t in still.tracks] == [0]
    assert still.observations[0].track_ids == [0]  # analyzers still see who is standing there


async def test_cameras_choose_their_detectors(tmp_path: Path) -> None:
    Finds.batches.clear()
    ctx = make_context("x", tmp_path)
    cameras = {"gym": CameraSourceConfig(detectors=["other"]), "gate": CameraSourceConfig()}
    _, proc = processor(tmp_path, {"finds": Finds("finds", Finds.Config(), ctx)}, cameras)
    results = await proc.process([make_frame(camera_id="gym"), make_frame(camera_id="gate")])
    assert Finds.batches == [["gate"]]
    assert results[0].detections == [] and len(results[1].detections) == 1


async def test_a_busy_camera_cannot_starve_the_others_and_hot_cameras_go_first() -> None:
    served: list[list[str]] = []

    async def process(frames: Sequence[Frame]) -> None:
        served.append([f.camera_id for f in frames])

    scheduler = DetectionScheduler(process, batch_size=2)
    for sequence in range(50):  # "busy" floods; the others send one frame each
        await scheduler.offer(make_frame(camera_id="busy", sequence=sequence))
    for camera in ("a", "b", "c"):
        await scheduler.offer(make_frame(camera_id=camera))
    await scheduler.on_incident(make_incident(camera_id="c"))
    first = scheduler.next_batch()
    second = scheduler.next_batch()
    assert first[0].camera_id == "c"  # an open incident: first
    assert sorted(f.camera_id for f in first + second) == ["a", "b", "busy", "c"]
    assert [f.sequence for f in first + second if f.camera_id == "busy"] == [49]  # its latest frame only
    assert scheduler.dropped == {"busy": 49}
    assert scheduler.next_batch() == []
    assert scheduler.lag() == 0.0  # nothing waits


def test_lag_is_the_age_of_the_oldest_waiting_frame() -> None:
    from campusguard.sdk import StageStamp

    async def process(frames: Sequence[Frame]) -> None:
        pass

    scheduler = DetectionScheduler(process)
    old = StageStamp.now().model_copy(update={"monotonic": StageStamp.now().monotonic - 0.3})
    asyncio.run(scheduler.offer(make_frame(camera_id="a", captured=old)))
    asyncio.run(scheduler.offer(make_frame(camera_id="b")))
    assert 0.3 <= scheduler.lag() < 1.0
    assert scheduler.rate() == 2 / 3.0  # two frames offered in the last 3 s


async def test_hot_cameras_go_ahead_but_never_starve_a_quiet_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Detection saturated: four cameras with incidents and one quiet camera, one frame per turn."""
    from campusguard.core.pipeline import scheduler as module

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])

    async def process(frames: Sequence[Frame]) -> None:
        pass

    scheduler = DetectionScheduler(process, batch_size=1, hot_seconds=3600)
    hot = ["h1", "h2", "h3", "h4"]
    for camera in hot:
        await scheduler.on_incident(make_incident(camera_id=camera))
    turns: list[str] = []
    for _ in range(200):  # every camera always has a frame waiting; each turn takes 50 ms
        for camera in [*hot, "quiet"]:
            await scheduler.offer(make_frame(camera_id=camera))
        turns.append(scheduler.next_batch()[0].camera_id)
        clock[0] += 0.05
    quiet = [i for i, c in enumerate(turns) if c == "quiet"]
    gaps = [b - a for a, b in itertools.pairwise(quiet)]
    assert turns[:4] == hot  # the incidents go first
    # Each hot camera is served every ~0.25 s, the quiet one every ~1.25 s (HOT_LEAD later): slowed, not starved.
    assert len(quiet) >= 7 and max(gaps) <= 25


def file_camera(name: str) -> str:
    """A camera playing the sample clip, every frame to detection."""
    return f'[cameras.{name}]\ntype = "file"\npath = "{SAMPLE}"\nmotion.mode = "always"\ntamper.enabled = false\n\n'


PIPELINE = "[detectors.finds]\n[trackers.simple]\n"


class PipelinePlugin:
    @hookimpl
    def campusguard_register_detectors(self, registry: Registry[Detector]) -> None:
        registry.add(Finds)

    @hookimpl
    def campusguard_register_trackers(self, registry: Registry[Tracker]) -> None:
        registry.add(OneTrackPerDetection)

    @hookimpl
    def campusguard_register_analyzers(self, registry: Registry[Analyzer]) -> None:
        registry.add(CountPeople)


@pytest.mark.slow
async def test_cameras_feed_detection_through_the_core(campusguard_core, campusguard_no_lingering) -> None:
    Finds.batches.clear()
    Finds.delay = 0.3
    observations: list[Observation] = []

    async def keep(observation: Observation) -> None:
        observations.append(observation)

    config = file_camera("yard") + file_camera("hall") + PIPELINE + "[analyzers.count]\n"
    async with campusguard_core(config, plugins={"pipeline": PipelinePlugin()}, entry_points=True) as core:
        core.api.bus.subscribe(OBSERVATIONS, keep, name="test")
        for _ in range(300):
            if {o.camera_id for o in observations} == {"yard", "hall"} and len(observations) >= 10:
                break
            await asyncio.sleep(0.01)
    assert {o.camera_id for o in observations} == {"yard", "hall"}
    assert any(len(batch) == 2 for batch in Finds.batches)  # both cameras in one detector call


# -- coverage: analyzers that no detector can feed ----------------------------------------------------


class WatchesWeapons(Analyzer):
    kind = "watches_weapons"
    labels = ("weapon",)

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        return []


class FindsWeapons(Detector):
    kind = "finds_weapons"
    labels = ("gun", "weapon")

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        return [[] for _ in frames]


async def test_an_analyzer_no_detector_can_feed_is_named_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ctx = make_context("x", tmp_path)
    core = StubCore(tmp_path, cameras={"gate": CameraSourceConfig(), "gym": CameraSourceConfig(detectors=["guns"])})
    detectors: dict[str, Detector] = {"people": Finds("people", Finds.Config(), ctx)}
    weapons = WatchesWeapons("weapons", WatchesWeapons.Config(), ctx)
    analyzers: dict[str, Analyzer] = {"weapons": weapons, "count": CountPeople("count", CountPeople.Config(), ctx)}
    proc = FrameProcessor(core, lambda: detectors, dict, lambda: analyzers)
    with caplog.at_level("WARNING", logger="campusguard.pipeline"):
        for _ in range(3):
            await proc.process([make_frame(camera_id="gate")])
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings == [
        "analyzer 'weapons' on camera 'gate' fires on tracks labelled weapon, but the camera's detectors "
        "(people) report only person: it can never fire. Add a detector that reports weapon (a `yolo` model, "
        "with `label_map` naming its classes so) or change the analyzer's `labels`"
    ]
    assert list(proc.coverage.gaps) == [("gate", "weapons")]  # CountPeople fires on any label: no gap

    # A detector that reports weapons joins (it started late): the gap closes, silently.
    caplog.clear()
    detectors["guns"] = FindsWeapons("guns", FindsWeapons.Config(), ctx)
    await proc.process([make_frame(camera_id="gate"), make_frame(camera_id="gym")])
    assert proc.coverage.gaps == {} and not caplog.records


async def test_detectors_that_do_not_declare_labels_are_not_judged(tmp_path: Path) -> None:
    ctx = make_context("x", tmp_path)
    detectors: dict[str, Detector] = {
        "people": Finds("people", Finds.Config(), ctx),
        "odd": Raises("odd", Raises.Config(), ctx),
    }
    analyzers: dict[str, Analyzer] = {"weapons": WatchesWeapons("weapons", WatchesWeapons.Config(), ctx)}
    proc = FrameProcessor(StubCore(tmp_path), lambda: detectors, dict, lambda: analyzers)
    await proc.process([make_frame(camera_id="gate")])
    assert proc.coverage.gaps == {}  # "odd" may find weapons: the core cannot tell
    detectors.clear()
    await proc.process([make_frame(camera_id="gate")])
    assert proc.coverage.gaps == {}  # no detector at all: the supervisor reports the one that failed


class BlindPlugin(PipelinePlugin):
    @hookimpl
    def campusguard_register_analyzers(self, registry: Registry[Analyzer]) -> None:
        registry.add(WatchesWeapons)


@pytest.mark.slow
async def test_a_blind_analyzer_shows_in_the_metrics(campusguard_core, campusguard_no_lingering) -> None:
    import httpx
    from test_metrics import free_port

    port = free_port()
    config = f"[core]\nmetrics_port = {port}\n\n" + file_camera("yard") + PIPELINE
    config += '[analyzers.weapons]\ntype = "watches_weapons"\n'
    async with campusguard_core(config, plugins={"pipeline": BlindPlugin()}, entry_points=True) as core:
        for _ in range(300):
            if core.api.processor is not None and core.api.processor.coverage.gaps:
                break
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient() as client:
            lines = (await client.get(f"http://127.0.0.1:{port}/metrics")).text.splitlines()
    assert 'campusguard_analyzer_blind{camera="yard",analyzer="weapons"} 1' in lines


# -- priority while an incident is open ----------------------------------------------------------------


async def test_a_camera_stays_hot_while_its_incident_is_open(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    from campusguard.core.pipeline import scheduler as module
    from campusguard.sdk import IncidentKind, StageStamp

    clock = [1000.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])

    async def process(frames: Sequence[Frame]) -> None:
        pass

    scheduler = DetectionScheduler(process, hot_seconds=10)
    incident = make_incident(camera_id="gate", status="confirmed")
    incident.stamp("raised")
    await scheduler.on_incident(incident)
    clock[0] += 600  # ten minutes on, long past hot_seconds: still in progress, still hot
    assert scheduler.is_hot("gate", clock[0])
    incident.status = "resolved"
    await scheduler.on_incident(incident)
    assert scheduler.is_hot("gate", clock[0] + 5)  # hot_seconds more after its last news
    assert not scheduler.is_hot("gate", clock[0] + 11)

    # Left open and forgotten: news two hours old (read back after a restart) gives no priority.
    stale = make_incident(camera_id="hall", status="new")
    old = StageStamp.now()
    stale.stages = {"raised": old.model_copy(update={"wall": old.wall - timedelta(hours=2)})}
    await scheduler.on_incident(stale)
    assert not scheduler.is_hot("hall", clock[0])
    # Camera health says nothing about what the camera sees.
    await scheduler.on_incident(make_incident(camera_id="yard", kind=IncidentKind.CAMERA_OFFLINE))
    assert not scheduler.is_hot("yard", clock[0])


@pytest.mark.slow
async def test_an_open_incident_keeps_its_camera_hot_across_a_restart(campusguard_core) -> None:
    import time

    config = "[detection]\nhot_seconds = 0.001   # only being open keeps a camera hot here\n\n"
    config += file_camera("yard") + PIPELINE + "[analyzers.count]\n"
    async with campusguard_core(config, plugins={"pipeline": PipelinePlugin()}, entry_points=True) as core:
        await core.api.raise_incident(make_incident(camera_id="yard"))
        await core.api.raise_incident(make_incident(camera_id="hall", status="resolved"))
        data_dir = core.api.data_dir
    config = f'[core]\ndata_dir = "{data_dir}"\n' + config
    async with campusguard_core(config, plugins={"pipeline": PipelinePlugin()}, entry_points=True) as core:
        scheduler = core.api.scheduler
        assert scheduler.is_hot("yard", time.monotonic())
        assert not scheduler.is_hot("hall", time.monotonic())
