"""ONVIF Profile C door controllers: door list and state, commands, Faults, errors, door events.

The peer is our own door-controller simulator (DoorControl, AccessControl, PullPoint events, WS-Security);
every answer it gives is validated against the WSDLs/XSDs that onvif-zeep-async ships.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from peers.onvif_door_sim import DoorSimulator, SimAccessPoint, SimDoor
from peers.onvif_schema import SOAP, WSDL_DIR, schema, validate_soap
from xmlschema import XMLSchemaBase
from xmlschema.extras.wsdl import Wsdl11Document

from campusguard.adapters.onvif.access.adapter import OnvifAccessControl
from campusguard.adapters.onvif.access.errors import DoorCommandNotEffective, DoorCommandRefused, DoorTokenNotFound
from campusguard.adapters.onvif.access.events import holder_id
from campusguard.adapters.onvif.access.services import DEFINITIONS, register_services
from campusguard.adapters.onvif.errors import Unsupported
from campusguard.sdk import DOOR_EVENTS, AuthFailed, DoorAction, DoorCommand, DoorEvent, DoorEventKind, NotReady
from campusguard.sdk.testing import RecordingBus, StubCore, make_context
from campusguard.sdk.testing.conformance import AccessControlConformance, ErrorMapping

HOLDER_NAME = "Jane Q. Public"

# -- every simulator answer, validated against the shipped WSDLs ---------------------------------------


@functools.cache
def door_schema(service: str) -> XMLSchemaBase:
    return Wsdl11Document(str(WSDL_DIR / DEFINITIONS[service]["wsdl"]), allow="local").schema


def validate(service: str, payload: bytes) -> None:
    if service not in DEFINITIONS:
        validate_soap(service, payload)
        return
    root = ET.fromstring(payload)
    # xs:QName values (tac:EntityType) are resolved with the envelope's prefixes, which ElementTree drops.
    namespaces = dict(ns for _, ns in ET.iterparse(io.BytesIO(payload), events=("start-ns",)))
    assert root.tag == f"{{{SOAP}}}Envelope"
    body = root.find(f"{{{SOAP}}}Body")
    assert body is not None and len(body) == 1
    (content,) = body
    if content.tag != f"{{{SOAP}}}Fault":
        door_schema(service).validate(content, namespaces=namespaces)
        return
    assert content.findtext(f"{{{SOAP}}}Code/{{{SOAP}}}Value") in ("env:Sender", "env:Receiver")
    assert content.findtext(f"{{{SOAP}}}Reason/{{{SOAP}}}Text")
    for detail in content.findall(f"{{{SOAP}}}Detail/*"):
        door_schema(service).validate(detail, namespaces=namespaces)


class Validated:
    def __init__(self) -> None:
        self.checked: dict[str, int] = {}
        self.invalid: list[str] = []

    def __call__(self, service: str, operation: str, payload: bytes) -> None:
        try:
            validate(service, payload)
        except Exception as exc:  # collected: raising here would only become an HTTP 500
            self.invalid.append(f"{service} {operation}: {exc}")
        self.checked[operation] = self.checked.get(operation, 0) + 1


@pytest.fixture(scope="session")
def schemas_loaded() -> None:
    for service in ("events", "devicemgmt"):
        schema(service)
    for service in DEFINITIONS:
        door_schema(service)


SimFactory = Callable[..., Awaitable[DoorSimulator]]


@pytest.fixture
async def make_sim(schemas_loaded: None) -> AsyncIterator[SimFactory]:
    sims: list[tuple[DoorSimulator, Validated]] = []

    async def make(**options: Any) -> DoorSimulator:
        validated = Validated()
        sim = await DoorSimulator(on_response=validated, **options).start()
        sims.append((sim, validated))
        return sim

    yield make
    for sim, validated in sims:
        await sim.stop()
        assert validated.invalid == []
        assert validated.checked


@pytest.fixture
async def sim(make_sim: SimFactory) -> DoorSimulator:
    return await make_sim()


class Adapters:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.started: list[OnvifAccessControl] = []

    def build(self, sim: DoorSimulator | None, *, name: str = "office", **options: Any) -> OnvifAccessControl:
        config = {"host": "127.0.0.1", "port": sim.port if sim else 1, "username": "admin", "password": "secret",
                  "timeout": 3.0, "events": False} | options  # fmt: skip
        context = make_context(name, self.tmp_path, StubCore(self.tmp_path))
        return OnvifAccessControl(name, OnvifAccessControl.Config.model_validate(config), context)

    async def start(self, sim: DoorSimulator | None, **options: Any) -> OnvifAccessControl:
        adapter = self.build(sim, **options)
        self.started.append(adapter)
        await adapter.start()
        return adapter


@pytest.fixture
async def adapters(tmp_path: Path) -> AsyncIterator[Adapters]:
    made = Adapters(tmp_path)
    yield made
    for adapter in made.started:
        await adapter.stop()


def command(door: str, action: DoorAction, **options: Any) -> DoorCommand:
    by = "rule:test" if action in (DoorAction.LOCK, DoorAction.LOCKDOWN) else "principal"
    return DoorCommand(door_id=door, action=action, requested_by=by, **options)


def door_events(adapter: OnvifAccessControl) -> list[DoorEvent]:
    bus = adapter.context.core.bus
    assert isinstance(bus, RecordingBus)
    return [message for topic, message in bus.published if topic == DOOR_EVENTS.name]


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


# -- registering the services with onvif-zeep-async ------------------------------------------------


def test_the_services_are_registered_in_the_librarys_own_table(monkeypatch: pytest.MonkeyPatch) -> None:
    import onvif.client

    from campusguard.adapters.onvif import lib

    register_services()
    register_services()  # idempotent
    assert onvif.client.SERVICES is lib.SERVICES  # the dict the client looks services up in
    assert lib.SERVICES["doorcontrol"]["binding"] == "DoorControlBinding"
    assert lib.SERVICES["accesscontrol"]["binding"] == "PACSBinding"
    monkeypatch.setitem(lib.SERVICES, "doorcontrol", {"ns": "urn:other", "wsdl": "x.wsdl", "binding": "B"})
    with pytest.raises(RuntimeError, match="already knows a service 'doorcontrol'"):
        register_services()


async def test_get_services_lists_door_and_access_control_with_their_capabilities(sim: DoorSimulator) -> None:
    from campusguard.adapters.onvif.client import OnvifTarget, connected

    register_services()
    async with connected(OnvifTarget("office", sim.host, sim.port, "admin", "secret", timeout=3)) as session:
        services = await session.call("devicemgmt", "GetServices", {"IncludeCapability": True})
        assert session.camera.xaddrs[DEFINITIONS["doorcontrol"]["ns"]].endswith("/onvif/doorcontrol_service")
        assert session.camera.xaddrs[DEFINITIONS["accesscontrol"]["ns"]].endswith("/onvif/accesscontrol_service")
    listed = {s.Namespace: s for s in services}
    assert listed[DEFINITIONS["doorcontrol"]["ns"]].Capabilities is not None
    assert sim.counts["GetServices"] == 2


def test_listing_plugins_imports_no_soap_library() -> None:
    code = (
        "import sys, campusguard.adapters.onvif.access.hooks;"
        "print(sorted(m for m in ('onvif', 'zeep', 'lxml', 'aiohttp', 'xmlschema') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"


# -- doors, state, commands -------------------------------------------------------------------------


async def test_doors_access_points_and_state_in_words(make_sim: SimFactory, adapters: Adapters) -> None:
    doors = [SimDoor("Door_1", "Front entrance"), SimDoor("Door_2", "Gym side door"), SimDoor("Door_3", "Kitchen")]
    sim = await make_sim(doors=doors, max_limit=1)  # three pages of one door each
    adapter = await adapters.start(sim)
    assert {t: d.name for t, d in adapter.device_doors.items()} == {
        "Door_1": "Front entrance", "Door_2": "Gym side door", "Door_3": "Kitchen",
    }  # fmt: skip
    assert adapter.device_doors["Door_1"].capabilities["LockDown"] is True
    assert {t: p.door_token for t, p in adapter.access_points.items()} == {"AP_1": "Door_1", "AP_2": "Door_2"}
    assert sim.counts["GetDoorInfoList"] == 3

    sim.set_door("Door_2", physical="Open", tamper="TamperDetected")
    answer = await adapter.execute(command("Door_1", DoorAction.QUERY))
    assert answer == "door 'Door_1' (Front entrance): locked; lock locked; door closed; no alarm; no tamper"
    answer = await adapter.execute(command("Door_2", DoorAction.QUERY))
    assert answer.endswith("locked; lock locked; door open; no alarm; TAMPER detected")


async def test_each_command_changes_the_door_and_reports_what_the_controller_says(
    make_sim: SimFactory, adapters: Adapters
) -> None:
    sim = await make_sim(access_time=30.0)
    adapter = await adapters.start(sim, doors={"front": "Door_1", "gym": "Door_2"})
    door = sim.doors["Door_1"]

    answer = await adapter.execute(command("front", DoorAction.UNLOCK))
    assert (door.mode, door.lock) == ("Unlocked", "Unlocked")
    assert answer == (
        "UnlockDoor accepted; door 'front' (Front entrance, token Door_1) is now "
        "unlocked; lock unlocked; door closed; no alarm; no tamper"
    )
    answer = await adapter.execute(command("front", DoorAction.LOCK))
    assert (door.mode, door.lock) == ("Locked", "Locked")
    assert "LockDoor accepted" in answer and "is now locked; lock locked" in answer

    answer = await adapter.execute(command("front", DoorAction.MOMENTARY_ACCESS))
    assert (door.mode, door.lock) == ("Accessed", "Unlocked")
    assert "is now released for momentary access; lock unlocked" in answer

    answer = await adapter.execute(command("front", DoorAction.LOCKDOWN, exercise=True))
    assert (door.mode, door.lock) == ("LockedDown", "Locked")
    assert "is now locked down; lock locked" in answer and answer.endswith("(exercise)")

    answer = await adapter.execute(command("front", DoorAction.LOCKDOWN_RELEASE))
    assert door.mode == "Locked"
    assert "LockDownReleaseDoor accepted" in answer and "is now locked;" in answer

    assert [op for op, token in sim.commands] == [
        "UnlockDoor", "LockDoor", "AccessDoor", "LockDownDoor", "LockDownReleaseDoor",
    ]  # fmt: skip
    assert {token for _, token in sim.commands} == {"Door_1"}
    assert sim.doors["Door_2"].mode == "Locked"  # the other door was never touched


async def test_momentary_access_relocks_after_the_configured_time(sim: DoorSimulator, adapters: Adapters) -> None:
    adapter = await adapters.start(sim, access_time=0.3)
    await adapter.execute(command("Door_2", DoorAction.MOMENTARY_ACCESS))
    assert sim.doors["Door_2"].mode == "Accessed"
    await wait_for(lambda: sim.doors["Door_2"].mode == "Locked", timeout=3)
    assert "locked; lock locked" in await adapter.execute(command("Door_2", DoorAction.QUERY))


async def test_a_dry_run_sends_nothing(sim: DoorSimulator, adapters: Adapters) -> None:
    adapter = await adapters.start(sim)
    answer = await adapter.execute(command("Door_1", DoorAction.UNLOCK, dry_run=True))
    assert answer == "dry run, nothing sent: would send UnlockDoor for door 'Door_1' (Front entrance)"
    assert sim.commands == [] and sim.doors["Door_1"].mode == "Locked"


# -- refusals and errors ----------------------------------------------------------------------------


async def test_a_fault_is_an_error_with_its_code_and_reason(sim: DoorSimulator, adapters: Adapters) -> None:
    adapter = await adapters.start(sim)
    await adapter.execute(command("Door_1", DoorAction.LOCKDOWN))
    with pytest.raises(DoorCommandRefused) as refused:
        await adapter.execute(command("Door_1", DoorAction.UNLOCK))
    assert str(refused.value) == (
        "door controller 'office' refused UnlockDoor for door 'Door_1' (Front entrance): door Door_1 is "
        "LockedDown: UnlockDoor is not possible in that mode (SOAP fault Receiver/Action/Failure)"
    )
    assert (refused.value.code, refused.value.subcodes) == ("Receiver", ("Action", "Failure"))
    assert sim.doors["Door_1"].mode == "LockedDown"


async def test_an_unknown_token_fault_is_a_clear_lookup_error(
    sim: DoorSimulator, adapters: Adapters, caplog: pytest.LogCaptureFixture
) -> None:
    adapter = await adapters.start(sim, doors={"front": "Door_1", "annex": "Door_9"})
    assert "does not list DoorToken(s) Door_9 (it lists Door_1, Door_2)" in caplog.text
    with pytest.raises(DoorTokenNotFound) as refused:
        await adapter.execute(command("annex", DoorAction.LOCK))
    assert isinstance(refused.value, LookupError)
    assert str(refused.value) == (
        "door controller 'office' refused LockDoor for door 'annex' (token Door_9): "
        "No door with token 'Door_9' (SOAP fault Sender/InvalidArgVal/NotFound)"
    )


async def test_an_unknown_door_id_names_the_known_ones(sim: DoorSimulator, adapters: Adapters) -> None:
    adapter = await adapters.start(sim, doors={"front": "Door_1", "gym": "Door_2"})
    with pytest.raises(LookupError, match=r"unknown door 'Door_1': .* controller 'office' has doors front, gym"):
        await adapter.execute(command("Door_1", DoorAction.LOCK))
    assert sim.commands == []


async def test_a_door_added_on_the_controller_is_found_without_a_restart(
    sim: DoorSimulator, adapters: Adapters, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="campusguard")
    adapter = await adapters.start(sim)
    assert "doors Door_1 (Front entrance), Door_2 (Gym side door); 2 access point(s)" in caplog.text
    monkeypatch.setattr("campusguard.adapters.onvif.access.adapter.RELIST_INTERVAL", 0.0)
    sim.doors["Door_3"] = SimDoor("Door_3", "Annex")
    answer = await adapter.execute(command("Door_3", DoorAction.LOCK))
    assert answer.startswith("LockDoor accepted; door 'Door_3' (Annex) is now locked;")
    with pytest.raises(LookupError, match=r"unknown door 'Door_4': .* has doors Door_1, Door_2, Door_3$"):
        await adapter.execute(command("Door_4", DoorAction.LOCK))


async def test_a_door_without_the_capability_is_refused_before_sending(
    make_sim: SimFactory, adapters: Adapters
) -> None:
    plain = SimDoor("Door_1", "Store room")
    plain.capabilities["LockDown"] = False
    sim = await make_sim(doors=[plain], access_points=[])
    adapter = await adapters.start(sim)
    with pytest.raises(Unsupported, match=r"cannot lock down door 'Door_1' \(Store room\): .* no LockDown capab"):
        await adapter.execute(command("Door_1", DoorAction.LOCKDOWN))
    assert sim.commands == []


async def test_a_command_the_door_ignores_is_never_reported_as_done(make_sim: SimFactory, adapters: Adapters) -> None:
    sim = await make_sim(doors=[SimDoor("Door_1", "Front", stuck=True)], access_points=[])
    adapter = await adapters.start(sim)
    with pytest.raises(
        DoorCommandNotEffective, match=r"accepted LockDownDoor but reports door 'Door_1' \(Front\) locked \("
    ):
        await adapter.execute(command("Door_1", DoorAction.LOCKDOWN))
    assert sim.commands == [("LockDownDoor", "Door_1")]


async def test_a_wrong_password_is_auth_failed(sim: DoorSimulator, adapters: Adapters) -> None:
    with pytest.raises(AuthFailed, match="door controller 'office': authentication failed"):
        await adapters.start(sim, password="wrong")


async def test_an_unreachable_controller_is_not_ready_at_once(adapters: Adapters) -> None:
    started = time.monotonic()
    with pytest.raises(NotReady, match=r"door controller 'office' cannot be reached at 127\.0\.0\.1:1: "):
        await adapters.start(None)
    assert time.monotonic() - started < 3


async def test_a_controller_that_goes_away_is_not_ready_for_commands(sim: DoorSimulator, adapters: Adapters) -> None:
    adapter = await adapters.start(sim)
    await sim.stop()
    with pytest.raises(NotReady, match="door controller 'office'"):
        await adapter.execute(command("Door_1", DoorAction.LOCK))


async def test_a_device_without_door_control_is_unsupported(make_sim: SimFactory, adapters: Adapters) -> None:
    from peers.onvif_events_sim import EventsSimulator

    camera = await EventsSimulator().start()
    try:
        with pytest.raises(Unsupported, match="offers no DoorControl service"):
            await adapters.start(camera)  # type: ignore[arg-type]
    finally:
        await camera.stop()


# -- events -----------------------------------------------------------------------------------------


async def subscribed(adapter: OnvifAccessControl) -> None:
    subscriber = adapter._subscriber
    assert subscriber is not None
    await wait_for(lambda: subscriber.stats.subscribed)


async def test_door_and_access_events_arrive_as_door_events_with_opaque_holders(
    sim: DoorSimulator, adapters: Adapters, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG", logger="campusguard")  # (onvif-zeep-async logs whole SOAP bodies at DEBUG)
    adapter = await adapters.start(sim, doors={"front": "Door_1", "gym": "Door_2"}, events=True)
    await subscribed(adapter)
    await asyncio.sleep(0.2)
    assert door_events(adapter) == []  # the doors as they were at subscription time are not news

    sim.force_open("Door_1")
    sim.hold_open("Door_2")
    sim.set_door("Door_2", tamper="TamperDetected")
    sim.present("AP_1", "CRED_7", HOLDER_NAME, granted=True)
    sim.present("AP_2", "CRED_7", HOLDER_NAME, granted=False, reason="CredentialNotActive")
    sim.present_unknown_card("AP_1", "0012345678")
    sim.set_door("Door_1", alarm="Normal", physical="Closed")
    await wait_for(lambda: len(door_events(adapter)) == 10)

    got = [(e.door_id, e.kind, e.detail) for e in door_events(adapter)]
    assert got == [
        ("front", DoorEventKind.STATE_CHANGED, "door open"),
        ("front", DoorEventKind.FORCED_OPEN, "door forced open"),
        ("gym", DoorEventKind.STATE_CHANGED, "door open"),
        ("gym", DoorEventKind.HELD_OPEN, "door held open too long"),
        ("gym", DoorEventKind.READER_TAMPER, "door tamper detected"),
        ("front", DoorEventKind.ACCESS_GRANTED, "access granted (credential) at 'Front entrance reader' (AP_1)"),
        ("gym", DoorEventKind.ACCESS_DENIED, "access denied (credential) at 'Gym reader' (AP_2): CredentialNotActive"),
        ("front", DoorEventKind.ACCESS_DENIED, "access denied (credential not found, card) at 'Front entrance reader' "
         "(AP_1)"),
        ("front", DoorEventKind.STATE_CHANGED, "door alarm cleared (was forced open)"),
        ("front", DoorEventKind.STATE_CHANGED, "door closed"),
    ]  # fmt: skip
    events = door_events(adapter)
    assert {e.source for e in events} == {"office"}
    forced = events[1]
    assert forced.state == "locked, open"
    granted, denied, unknown_card = events[5:8]
    key = adapter._mapper.holder_key
    assert granted.credential_holder == holder_id("CRED_7", key) == denied.credential_holder
    assert granted.credential_holder is not None and granted.credential_holder.startswith("cred-")
    assert unknown_card.credential_holder == holder_id("0012345678", key, "card")
    assert (adapter.context.data_dir / "holder-id.key").stat().st_mode & 0o777 == 0o600
    # A name never leaves the adapter: not on the bus, not in a log.
    published = json.dumps([e.model_dump(mode="json") for e in events])
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("campusguard"))
    assert "door front: access_granted by cred-" in ours
    for secret in ("Jane", "CRED_7", "0012345678"):
        assert secret not in published
        assert secret not in ours


async def test_a_command_shows_up_as_a_state_change(sim: DoorSimulator, adapters: Adapters) -> None:
    adapter = await adapters.start(sim, events=True)
    await subscribed(adapter)
    await adapter.execute(command("Door_2", DoorAction.LOCKDOWN))
    await wait_for(lambda: len(door_events(adapter)) >= 1)
    (event,) = door_events(adapter)
    assert (event.door_id, event.kind, event.detail, event.state) == (
        "Door_2", DoorEventKind.STATE_CHANGED, "door locked down", "locked down, closed",
    )  # fmt: skip


async def test_an_alarm_active_at_subscription_is_reported_once(sim: DoorSimulator, adapters: Adapters) -> None:
    sim.force_open("Door_1")
    adapter = adapters.build(sim, events=True)
    adapters.started.append(adapter)
    await adapter.start()
    await subscribed(adapter)
    await wait_for(lambda: len(door_events(adapter)) == 1)
    assert door_events(adapter)[0].kind is DoorEventKind.FORCED_OPEN
    await adapter.stop()
    await adapter.start()  # subscribes again: the same alarm is not news
    await subscribed(adapter)
    await asyncio.sleep(0.3)
    assert [e.kind for e in door_events(adapter)] == [DoorEventKind.FORCED_OPEN]


async def test_a_controller_restart_is_offline_then_online(sim: DoorSimulator, adapters: Adapters) -> None:
    adapter = await adapters.start(sim, events=True, doors={"front": "Door_1", "gym": "Door_2"})
    await subscribed(adapter)
    await sim.restart(down_for=1.0)
    await wait_for(lambda: any(e.kind is DoorEventKind.DEVICE_ONLINE for e in door_events(adapter)), timeout=15)
    kinds = [(e.door_id, e.kind) for e in door_events(adapter)]
    assert kinds == [
        ("front", DoorEventKind.DEVICE_OFFLINE), ("gym", DoorEventKind.DEVICE_OFFLINE),
        ("front", DoorEventKind.DEVICE_ONLINE), ("gym", DoorEventKind.DEVICE_ONLINE),
    ]  # fmt: skip
    assert door_events(adapter)[0].detail.startswith("door controller unreachable: ")


async def test_access_points_of_unknown_doors_are_still_reported(make_sim: SimFactory, adapters: Adapters) -> None:
    sim = await make_sim(access_points=[SimAccessPoint("AP_9", "Loading dock reader", "Door_9")])
    adapter = await adapters.start(sim, events=True, doors={"front": "Door_1"}, holder_id_key="site key")
    await subscribed(adapter)
    sim.present("AP_9", "CRED_1", HOLDER_NAME, granted=False)
    sim.present("AP_X", "CRED_1", HOLDER_NAME, granted=True)
    await wait_for(lambda: len(door_events(adapter)) == 2)
    dock, nowhere = door_events(adapter)
    assert dock.door_id == "Door_9" and "door token 'Door_9' is not in this adapter's doors" in dock.detail
    assert nowhere.door_id == "AP_X" and "access point 'AP_X' controls no door known here" in nowhere.detail
    assert dock.credential_holder == nowhere.credential_holder == holder_id("CRED_1", b"site key")
    assert not (adapter.context.data_dir / "holder-id.key").exists()


async def test_events_off_subscribes_to_nothing(sim: DoorSimulator, adapters: Adapters) -> None:
    await adapters.start(sim, events=False)
    assert sim.counts.get("CreatePullPointSubscription", 0) == 0


# -- the SDK's conformance suite ---------------------------------------------------------------------


class TestConformance(AccessControlConformance, ErrorMapping):
    component_class = OnvifAccessControl
    door = "front"
    port = 0

    @pytest.fixture(autouse=True)
    async def _simulator(self, schemas_loaded: None) -> AsyncIterator[None]:
        validated = Validated()
        sim = await DoorSimulator(on_response=validated).start()
        self.port = sim.port
        yield
        await sim.stop()
        assert validated.invalid == []

    def valid_config(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "username": "admin", "password": "secret", "timeout": 3.0,
                "doors": {"front": "Door_1", "gym": "Door_2"}}  # fmt: skip

    def unreachable_config(self) -> dict[str, Any]:
        return self.valid_config() | {"port": 1}

    def bad_credentials_config(self) -> dict[str, Any]:
        return self.valid_config() | {"password": "not-the-password"}
