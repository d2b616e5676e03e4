"""ONVIF PullPoint events: subscribe, pull, renew, unsubscribe, re-subscribe after a restart.

The peer is our own events simulator (ipycam has no Events service); every answer it gives is
validated against the events/devicemgmt WSDLs that onvif-zeep-async ships, and the simulator is
cross-checked with a second, independent client (onveef).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from lxml import etree
from onveef import AsyncOnvifClient
from peers.onvif_events_sim import EventsSimulator
from peers.onvif_schema import schema, validate_soap

from campusguard.adapters.onvif.client import OnvifTarget
from campusguard.adapters.onvif.event_messages import classify, state_of, to_camera_event
from campusguard.adapters.onvif.events import PullPointSubscriber
from campusguard.sdk import CAMERA_EVENTS, AuthFailed, CameraEvent, CameraEventKind, Overflow

MOTION = "tns1:RuleEngine/CellMotionDetector/Motion"
TAMPER = "tns1:RuleEngine/TamperDetector/Tamper"
LINE = "tns1:RuleEngine/LineDetector/Crossed"
INPUT = "tns1:Device/Trigger/DigitalInput"
VIDEO_SOURCE = {"VideoSourceConfigurationToken": "VSC_1", "VideoAnalyticsConfigurationToken": "VAC_1"}


class Validated:
    """Every simulator answer, checked against the WSDL as it goes out."""

    def __init__(self) -> None:
        self.checked = 0
        self.invalid: list[str] = []

    def __call__(self, service: str, operation: str, payload: bytes) -> None:
        try:
            validate_soap(service, payload)
        except Exception as exc:  # collected: raising here would only turn into an HTTP 500
            self.invalid.append(f"{operation}: {exc}")
        self.checked += 1


@pytest.fixture(scope="session")
def schemas_loaded() -> None:
    schema("events")  # ~1 s each, once per session
    schema("devicemgmt")


@pytest.fixture
async def make_sim(schemas_loaded: None) -> AsyncIterator[Callable[..., object]]:
    sims: list[tuple[EventsSimulator, Validated]] = []

    async def make(**options: object) -> EventsSimulator:
        validated = Validated()
        sim = await EventsSimulator(on_response=validated, **options).start()  # type: ignore[arg-type]
        sims.append((sim, validated))
        return sim

    yield make
    for sim, validated in sims:
        await sim.stop()
        assert validated.invalid == []
        assert validated.checked > 0


def target(sim: EventsSimulator, password: str = "secret") -> OnvifTarget:
    return OnvifTarget("gym", sim.host, sim.port, "admin", password, timeout=3.0)


async def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


class Recorder:
    def __init__(self) -> None:
        self.events: list[CameraEvent] = []

    async def __call__(self, event: CameraEvent) -> None:
        self.events.append(event)

    def of(self, topic: str) -> list[CameraEvent]:
        return [e for e in self.events if e.topic == topic]


async def test_motion_tamper_analytics_and_inputs_arrive_as_typed_camera_events(make_sim) -> None:
    sim = await make_sim()
    got = Recorder()
    subscriber = PullPointSubscriber(target(sim), got, pull_timeout=2)
    subscriber.start()
    try:
        await wait_for(lambda: subscriber.stats.subscribed)
        sim.emit(MOTION, source=VIDEO_SOURCE | {"Rule": "MyMotionDetectorRule"}, data={"IsMotion": "true"})
        sim.emit(TAMPER, source=VIDEO_SOURCE | {"Rule": "MyTamperDetectorRule"}, data={"IsTamper": "true"})
        sim.emit(LINE, source=VIDEO_SOURCE | {"Rule": "Gate"}, data={"ObjectId": "7"}, operation=None)
        sim.emit(INPUT, source={"InputToken": "DI_0"}, data={"LogicalState": "true"})
        await wait_for(lambda: len(got.events) == 4)
    finally:
        await subscriber.stop()

    motion, tamper, line, panic = got.events
    assert motion.kind is CameraEventKind.MOTION and motion.active is True
    assert motion.camera_id == "gym"
    assert motion.source == VIDEO_SOURCE | {"Rule": "MyMotionDetectorRule"}
    assert motion.data == {"IsMotion": "true"}
    assert motion.property_operation == "Changed"
    assert motion.utc_time is not None and abs((motion.utc_time - datetime.now(UTC)).total_seconds()) < 10
    assert (tamper.kind, tamper.active) == (CameraEventKind.TAMPER, True)
    assert (line.kind, line.active, line.property_operation) == (CameraEventKind.ANALYTICS, None, None)
    assert (panic.kind, panic.active, panic.source) == (CameraEventKind.DIGITAL_INPUT, True, {"InputToken": "DI_0"})
    # They are bus messages: serialisable, and the topic never drops them.
    assert CameraEvent.model_validate_json(motion.model_dump_json()) == motion
    assert CAMERA_EVENTS.model is CameraEvent and CAMERA_EVENTS.default_overflow is Overflow.NEVER_DROP


async def test_renews_before_the_subscription_runs_out(make_sim) -> None:
    sim = await make_sim(max_termination=2)  # the camera grants 2 s, whatever is asked
    subscriber = PullPointSubscriber(target(sim), Recorder(), pull_timeout=5)
    subscriber.start()
    try:
        await wait_for(lambda: subscriber.stats.renewals >= 3, timeout=8)
    finally:
        await subscriber.stop()
    assert subscriber.stats.subscriptions == 1
    assert "expired" not in sim.counts


async def test_unsubscribes_at_shutdown(make_sim) -> None:
    sim = await make_sim()
    subscriber = PullPointSubscriber(target(sim), Recorder(), pull_timeout=10)
    subscriber.start()
    await wait_for(lambda: subscriber.stats.subscribed)
    started = time.monotonic()
    await subscriber.stop()  # while a 10 s long poll is open
    assert time.monotonic() - started < 2
    assert sim.unsubscribed == ["1"] and sim.subscriptions == {}
    await subscriber.stop()  # idempotent


async def test_subscribes_again_after_the_camera_restarts(make_sim) -> None:
    sim = await make_sim()
    got = Recorder()
    subscriber = PullPointSubscriber(target(sim), got, pull_timeout=2, retry_initial=0.1)
    subscriber.start()
    try:
        await wait_for(lambda: subscriber.stats.subscribed)
        sim.emit(MOTION, source=VIDEO_SOURCE, data={"IsMotion": "true"})
        await wait_for(lambda: len(got.events) == 1)

        await sim.restart(down_for=0.3)  # connections drop, subscriptions are forgotten
        await wait_for(lambda: subscriber.stats.subscriptions == 2, timeout=8)
        sim.emit(MOTION, source=VIDEO_SOURCE, data={"IsMotion": "false"})
        await wait_for(lambda: len(got.events) >= 3)
    finally:
        await subscriber.stop()

    # The new subscription starts with the property's state (Initialized), then the change.
    assert [(e.property_operation, e.active) for e in got.of(MOTION)] == [
        ("Changed", True),
        ("Initialized", True),
        ("Changed", False),
    ]
    assert subscriber.stats.errors >= 1 and subscriber.stats.last_error


async def test_a_subscription_the_camera_forgot_is_created_again(make_sim) -> None:
    sim = await make_sim()
    subscriber = PullPointSubscriber(target(sim), Recorder(), pull_timeout=1, retry_initial=0.1)
    subscriber.start()
    try:
        await wait_for(lambda: subscriber.stats.subscribed)
        sim.subscriptions.clear()  # e.g. the camera ran out of pull points
        await wait_for(lambda: subscriber.stats.subscriptions == 2, timeout=6)
    finally:
        await subscriber.stop()
    assert "No such subscription (ResourceUnknownFault)" in (subscriber.stats.last_error or "")


async def test_wrong_credentials_end_the_loop_with_auth_failed(make_sim) -> None:
    sim = await make_sim()
    subscriber = PullPointSubscriber(target(sim, password="wrong"), Recorder())
    with pytest.raises(AuthFailed, match=r"camera 'gym': authentication failed"):
        await asyncio.wait_for(subscriber.run(), 10)


async def test_a_failing_callback_does_not_stop_the_subscription(make_sim) -> None:
    sim = await make_sim()
    seen: list[CameraEvent] = []

    async def flaky(event: CameraEvent) -> None:
        seen.append(event)
        if len(seen) == 1:
            raise RuntimeError("handler bug")

    subscriber = PullPointSubscriber(target(sim), flaky, pull_timeout=2)
    subscriber.start()
    try:
        await wait_for(lambda: subscriber.stats.subscribed)
        sim.emit(MOTION, source=VIDEO_SOURCE, data={"IsMotion": "true"})
        sim.emit(MOTION, source=VIDEO_SOURCE, data={"IsMotion": "false"})
        await wait_for(lambda: len(seen) == 2)
    finally:
        await subscriber.stop()
    assert subscriber.stats.callback_errors == 1 and subscriber.stats.subscriptions == 1


async def test_onveef_reads_the_simulator_as_our_client_does(make_sim) -> None:
    """A second, independent ONVIF client sees the same events: the simulator is not tailored to us."""
    sim = await make_sim()
    async with AsyncOnvifClient(sim.host, sim.port, "admin", "secret", timeout_s=5) as client:
        # onveef 0.6 builds httpx.Timeout(Timeout, read=...) for long polls, which httpx 0.28 rejects;
        # a plain number there avoids it.
        client._timeout = 5.0  # type: ignore[assignment]
        async with client.pull_point(timeout="PT2S") as pull:
            sim.emit(MOTION, source=VIDEO_SOURCE, data={"IsMotion": "true"})
            theirs = await pull.pull()
    assert sim.unsubscribed == ["1"]

    got = Recorder()
    subscriber = PullPointSubscriber(target(sim), got, pull_timeout=2)
    subscriber.start()
    try:
        await wait_for(lambda: len(got.events) == 1)  # the property's state, as Initialized
    finally:
        await subscriber.stop()
    (ours,) = got.events
    (message,) = theirs
    assert message["topic"] == ours.topic == MOTION
    assert message["source"] == ours.source and message["data"] == ours.data


# -- reading notifications -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "kind"),
    [
        ("tns1:RuleEngine/CellMotionDetector/Motion", CameraEventKind.MOTION),
        ("tns1:VideoSource/MotionAlarm", CameraEventKind.MOTION),
        ("tnsaxis:CameraApplicationPlatform/VMD/Camera1ProfileANY", CameraEventKind.MOTION),
        ("tns1:VideoSource/GlobalSceneChange/ImagingService", CameraEventKind.TAMPER),
        ("tns1:RuleEngine/TamperDetector/Tamper", CameraEventKind.TAMPER),
        ("tns1:VideoSource/ImageTooBlurry/AnalyticsService", CameraEventKind.TAMPER),
        ("tns1:RuleEngine/FieldDetector/ObjectsInside", CameraEventKind.ANALYTICS),
        ("tns1:RuleEngine/LineDetector/Crossed", CameraEventKind.ANALYTICS),
        ("tns1:Device/Trigger/DigitalInput", CameraEventKind.DIGITAL_INPUT),
        ("tns1:Monitoring/ProcessorUsage", CameraEventKind.OTHER),
    ],
)
def test_topics_are_classified(topic: str, kind: CameraEventKind) -> None:
    assert classify(topic) is kind


def test_boolean_state_is_read_from_the_usual_data_items() -> None:
    assert state_of({"IsMotion": "true"}) is True
    assert state_of({"State": "false"}) is False
    assert state_of({"LogicalState": "1"}) is True
    assert state_of({"ObjectId": "3"}) is None


def test_a_message_zeep_left_as_raw_xml_is_read_too() -> None:
    """Vendor content zeep has no schema for arrives as an lxml element."""
    xml = (
        '<tt:Message xmlns:tt="http://www.onvif.org/ver10/schema" UtcTime="2024-05-01T08:00:00Z" '
        'PropertyOperation="Changed"><tt:Source><tt:SimpleItem Name="Source" Value="1"/></tt:Source>'
        '<tt:Data><tt:SimpleItem Name="State" Value="true"/></tt:Data></tt:Message>'
    )

    class Holder:
        def __init__(self, value: object) -> None:
            self._value_1 = value

    class Notification:
        Topic = Holder("tns1:VideoSource/MotionAlarm")
        Message = Holder(etree.fromstring(xml))

    event = to_camera_event("hall", Notification())
    assert (event.kind, event.active, event.source, event.data) == (
        CameraEventKind.MOTION,
        True,
        {"Source": "1"},
        {"State": "true"},
    )
    assert event.utc_time == datetime(2024, 5, 1, 8, tzinfo=UTC)
