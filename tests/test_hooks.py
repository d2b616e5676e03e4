"""Every hook, end to end: each registration hook's components are configured and started, event
handlers receive bus messages, lifecycle hooks see the core."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from campusguard.sdk import (
    INCIDENTS,
    AccessControl,
    Analyzer,
    CameraSource,
    Component,
    CoreAPI,
    Detection,
    Detector,
    Dispatcher,
    DoorCommand,
    EventHandler,
    Frame,
    Incident,
    Message,
    Notifier,
    Observation,
    Registry,
    Track,
    Tracker,
    Visitor,
    VisitorSystem,
    hookimpl,
)
from campusguard.sdk.testing import make_incident

started: list[str] = []


class Recorder(Component):
    async def start(self) -> None:
        started.append(f"{self.category}:{self.name}")


class Camera(Recorder, CameraSource):
    kind = "fake_camera"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")
        url: str

    async def frames(self) -> AsyncIterator[Frame]:  # type: ignore[override]
        yield Frame(camera_id=self.name, sequence=0, width=1, height=1)


class People(Recorder, Detector):
    kind = "fake_people"
    labels = ("person",)

    async def detect(self, frames: Sequence[Frame]) -> list[list[Detection]]:
        return [[] for _ in frames]


class Follow(Recorder, Tracker):
    kind = "fake_tracker"

    async def update(self, frame: Frame, detections: Sequence[Detection]) -> list[Track]:
        return []


class Loiter(Recorder, Analyzer):
    kind = "fake_loitering"

    async def analyze(self, frame: Frame, tracks: Sequence[Track]) -> list[Observation]:
        return []


class Pager(Recorder, Notifier):
    kind = "fake_pager"

    async def notify(self, incident: Incident) -> None:
        return None


class Doors(Recorder, AccessControl):
    kind = "fake_doors"

    async def execute(self, command: DoorCommand) -> str:
        return "locked"


class FrontDesk(Recorder, VisitorSystem):
    kind = "fake_visitors"

    async def on_site(self) -> list[Visitor]:
        return []


class Dispatch(Recorder, Dispatcher):
    kind = "fake_dispatch"

    async def dispatch(self, incident: Incident) -> None:
        return None


class IncidentEcho(Recorder, EventHandler):
    kind = "incident_echo"
    topics = (INCIDENTS,)
    seen: ClassVar[list[str]] = []

    async def handle(self, message: Message) -> None:
        IncidentEcho.seen.append(message.id)


class EverythingPlugin:
    def __init__(self) -> None:
        self.cores: list[tuple[str, CoreAPI]] = []

    @hookimpl
    def campusguard_register_camera_sources(self, registry: Registry[CameraSource]) -> None:
        registry.add(Camera)

    @hookimpl
    def campusguard_register_detectors(self, registry: Registry[Detector]) -> None:
        registry.add(People)

    @hookimpl
    def campusguard_register_trackers(self, registry: Registry[Tracker]) -> None:
        registry.add(Follow)

    @hookimpl
    def campusguard_register_analyzers(self, registry: Registry[Analyzer]) -> None:
        registry.add(Loiter)

    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        registry.add(Pager)

    @hookimpl
    def campusguard_register_adapters(self, registry: Registry[Any]) -> None:
        registry.add(Doors)
        registry.add(FrontDesk)
        registry.add(Dispatch)

    @hookimpl
    def campusguard_register_event_handlers(self, registry: Registry[EventHandler]) -> None:
        registry.add(IncidentEcho)

    @hookimpl
    async def campusguard_startup(self, core: CoreAPI) -> None:
        await asyncio.sleep(0)
        self.cores.append(("startup", core))

    @hookimpl
    def campusguard_shutdown(self, core: CoreAPI) -> None:
        self.cores.append(("shutdown", core))


CONFIG = """
[cameras.gym]
type = "fake_camera"
url = "file:///dev/null"

[detectors.people]
type = "fake_people"

[trackers.default]
type = "fake_tracker"

[analyzers.entrance]
type = "fake_loitering"

[notifiers.pager]
type = "fake_pager"

[adapters.doors]
type = "fake_doors"

[adapters.front_desk]
type = "fake_visitors"

[adapters.psap]
type = "fake_dispatch"
"""


async def test_every_registration_hook_and_lifecycle_hook(campusguard_core, campusguard_no_lingering) -> None:
    started.clear()
    IncidentEcho.seen.clear()
    plugin = EverythingPlugin()
    async with campusguard_core(CONFIG, plugins={"everything": plugin}) as core:
        assert sorted(started) == sorted(
            [
                "camera_source:gym",
                "detector:people",
                "tracker:default",
                "analyzer:entrance",
                "notifier:pager",
                "access_control:doors",
                "visitor_system:front_desk",
                "dispatcher:psap",
                "event_handler:incident_echo",
            ]
        )
        assert core.plugin_status("everything") == ("loaded", None)
        incident = await core.api.raise_incident(make_incident())
        await core.wait_delivered("pager", 1)
        for _ in range(100):
            if IncidentEcho.seen:
                break
            await asyncio.sleep(0.01)
        assert IncidentEcho.seen == [incident.id]
        assert [stage for stage, _ in plugin.cores] == ["startup"]
        assert plugin.cores[0][1] is core.api
    assert [stage for stage, _ in plugin.cores] == ["startup", "shutdown"]


async def test_component_in_the_wrong_table_is_reported(campusguard_core) -> None:
    import pytest

    from campusguard.core.config import ConfigInvalid

    with pytest.raises(ConfigInvalid, match=r"\[notifiers.doors\] unknown notifiers type 'fake_doors'"):
        async with campusguard_core('[notifiers.doors]\ntype = "fake_doors"\n', plugins={"e": EverythingPlugin()}):
            pass
