"""The conformance suites catch real defects, and accept a correct component of every kind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from campusguard.sdk import (
    AccessControl,
    Analyzer,
    CameraSource,
    Detection,
    Detector,
    Dispatcher,
    DoorCommand,
    EventHandler,
    Frame,
    Incident,
    Message,
    Observation,
    Track,
    Tracker,
    Visitor,
    VisitorSystem,
)
from campusguard.sdk.testing import conformance as c

pytest_plugins = ["pytester"]


class FileCamera(CameraSource):
    kind = "conformance_camera"

    async def frames(self) -> AsyncIterator[Frame]:  # type: ignore[override]
        sequence = 0
        while True:
            yield Frame(camera_id=self.name, sequence=sequence, width=2, height=2)
            sequence += 1
            await asyncio.sleep(0.01)


class Nothing(Detector):
    kind = "conformance_detector"

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        await asyncio.sleep(0.01)
        return [[] for _ in frames]


class Still(Tracker):
    kind = "conformance_tracker"

    async def update(self, frame: Frame, detections: Sequence[Detection]) -> list[Track]:
        return []


class Quiet(Analyzer):
    kind = "conformance_analyzer"

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        return []


class DryRunDoors(AccessControl):
    kind = "conformance_doors"

    async def execute(self, command: DoorCommand) -> str:
        if command.door_id != "door-1":
            raise LookupError(f"no door {command.door_id!r}; doors: door-1")
        return "door-1: locked"


class EmptyLobby(VisitorSystem):
    kind = "conformance_visitors"

    async def on_site(self) -> list[Visitor]:
        return []


class Psap(Dispatcher):
    kind = "conformance_dispatch"

    async def dispatch(self, incident: Incident) -> None:
        assert incident.exercise


class Echo(EventHandler):
    kind = "conformance_handler"

    async def handle(self, message: Message) -> None:
        return None


class TestCamera(c.CameraSourceConformance):
    component_class = FileCamera


class TestDetector(c.DetectorConformance):
    component_class = Nothing


class TestTracker(c.TrackerConformance):
    component_class = Still


class TestAnalyzer(c.AnalyzerConformance):
    component_class = Quiet


class TestDoors(c.AccessControlConformance):
    component_class = DryRunDoors


class TestVisitors(c.VisitorSystemConformance):
    component_class = EmptyLobby


class TestDispatch(c.DispatcherConformance):
    component_class = Psap


class TestHandler(c.EventHandlerConformance):
    component_class = Echo


def test_suite_fails_a_defective_notifier(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import asyncio
        from pydantic import BaseModel, ConfigDict
        from campusguard.sdk import Notifier, NotReady
        from campusguard.sdk.testing.conformance import NotifierConformance, ErrorMapping

        class Sloppy(Notifier):
            kind = "sloppy"

            class Config(BaseModel):
                model_config = ConfigDict(extra="ignore")   # defect 1: unknown keys pass
                url: str = "x"

            async def start(self):
                self.client = object()

            async def stop(self):
                del self.client                              # defect 2: second stop raises

            async def notify(self, incident):
                asyncio.get_running_loop().create_task(asyncio.sleep(60))  # defect 3: leaks a task
                await asyncio.sleep(60)

        class TestSloppy(NotifierConformance, ErrorMapping):
            component_class = Sloppy
            deadline = 0.5

            def unreachable_config(self):
                return {}

            def bad_credentials_config(self):
                return {}
        """
    )
    result = pytester.runpytest("-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", "-q")
    outcomes = result.parseoutcomes()
    failed = {line.split(" - ")[0].rsplit("::", 1)[-1] for line in result.stdout.lines if line.startswith("FAILED")}
    assert failed == {
        "test_unknown_config_key_is_rejected",
        "test_start_and_stop_are_idempotent_within_the_deadline",
        "test_stop_without_start_is_safe",
        "test_work_after_start_returns",
        "test_cancellation_during_work_is_clean",
        "test_unreachable_peer_raises_not_ready",
        "test_bad_credentials_raise_auth_failed",
    }
    # Only "is a registered kind" and "preflight finds nothing" (it has no files to find) hold.
    assert outcomes == {"failed": 7, "passed": 2}
