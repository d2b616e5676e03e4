"""The MQTT notifier against a real mosquitto: topics, retained state, discovery, will, outages, auth."""

from __future__ import annotations

import asyncio
import gc
import json
import re
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, ClassVar

import pytest
from peers.mosquitto import Mosquitto, Subscriber, free_port
from peers.process import PeerProcess

from campusguard.plugins.notifiers.mqtt import MqttNotifier
from campusguard.plugins.notifiers.mqtt_discovery import SENSOR_KINDS
from campusguard.plugins.notifiers.mqtt_topics import CAMERA_AVAILABILITY_EVENT
from campusguard.sdk import (
    CAMERA_EVENTS,
    CameraEvent,
    CameraEventKind,
    CameraSourceConfig,
    Incident,
    IncidentChange,
    IncidentStatus,
    Notifier,
    Registry,
    hookimpl,
)
from campusguard.sdk.testing import make_context, make_incident
from campusguard.sdk.testing.conformance import ErrorMapping, NotifierConformance
from campusguard.sdk.testing.harness import RunningCore
from campusguard.sdk.testing.stubs import StubCore

USER, PASSWORD = "campusguard", "right-horse-battery"


class MqttPlugin:
    """Registers only the MQTT notifier, so these tests do not depend on the other notifiers."""

    @hookimpl
    def campusguard_register_notifiers(self, registry: Registry[Notifier]) -> None:
        registry.add(MqttNotifier)


def core_config(broker: Mosquitto, extra: str = "") -> str:
    return f"""
[delivery]
retry_initial = 0.05
retry_max = 0.3
poll_interval = 0.1

[notifiers.mqtt]
type = "mqtt"
host = "{broker.host}"
port = {broker.port}
connect_timeout = 2
{extra}
"""


def start_core(campusguard_core: Any, config: str) -> AbstractAsyncContextManager[RunningCore]:
    return campusguard_core(config, plugins={"mqtt-test": MqttPlugin()})  # type: ignore[no-any-return]


async def outbox(core: RunningCore) -> dict[str, int]:
    counts: dict[str, dict[str, int]] = await core.api.store.delivery_counts()  # type: ignore[attr-defined]
    return counts.get("mqtt", {})


async def wait_state(core: RunningCore, state: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while core.state("notifiers", "mqtt") != state:
        if time.monotonic() > deadline:
            raise AssertionError(f"notifier is {core.state('notifiers', 'mqtt')}: {core.error('notifiers', 'mqtt')}")
        await asyncio.sleep(0.01)


def resolved(incident: Incident) -> Incident:
    """The next delivered version: resolved by a person."""
    return incident.model_copy(
        update={"status": IncidentStatus.RESOLVED, "change": IncidentChange.RESOLVED, "revision": incident.revision + 1}
    )


def notifier(tmp_path: Path, broker: Mosquitto, cameras: tuple[str, ...] = (), **options: Any) -> MqttNotifier:
    config = MqttNotifier.Config.model_validate({"host": broker.host, "port": broker.port, **options})
    core = StubCore(tmp_path, cameras={c: CameraSourceConfig() for c in cameras})
    return MqttNotifier("mqtt", config, make_context("mqtt", tmp_path, core))


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path / "broker") as b:
        yield b


# -- the SDK's contract, with a real broker that checks passwords --------------------------------


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    with Mosquitto(tmp_path_factory.mktemp("secured"), users={USER: PASSWORD}) as b:
        yield b


@pytest.mark.usefixtures("secured")
class TestMqttNotifier(NotifierConformance, ErrorMapping):
    component_class = MqttNotifier
    port: ClassVar[int] = 0

    @pytest.fixture(autouse=True)
    def _broker_port(self, secured: Mosquitto) -> None:
        type(self).port = secured.port

    def valid_config(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "username": USER, "password": PASSWORD}

    def unreachable_config(self) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": free_port(), "connect_timeout": 1}

    def bad_credentials_config(self) -> dict[str, Any]:
        return {**self.valid_config(), "password": "wrong"}


# -- 1. incidents on the expected topics, retained for late subscribers, cleared on resolve --------


async def test_incidents_arrive_retained_and_are_cleared_on_resolve(campusguard_core: Any, broker: Mosquitto) -> None:
    weapon = make_incident(kind="weapon", camera_id="gym", title="Knife seen")
    drill = make_incident(kind="intrusion", camera_id="lot", title="Intruder drill", exercise=True)
    async with start_core(campusguard_core, core_config(broker)) as core, Subscriber(broker, "campusguard/#") as live:
        await wait_state(core, "loaded")
        for incident in (weapon, drill):
            await core.api.raise_incident(incident)
        await core.wait_delivered("mqtt", 2)
        await live.wait_for(lambda: live.on("campusguard/events/weapon") and live.on("campusguard/events/intrusion"))

        (event,) = [json.loads(r.payload) for r in live.on("campusguard/events/weapon")]
        assert event["id"] == weapon.id and event["change"] == "raised" and event["revision"] == 0
        assert event["exercise"] is False and event["delivery_key"] == f"{weapon.id}:mqtt"
        assert event["title"] == "Knife seen"
        (drill_event,) = [json.loads(r.payload) for r in live.on("campusguard/events/intrusion")]
        assert drill_event["exercise"] is True and drill_event["title"] == "EXERCISE: Intruder drill"
        assert not live.on("campusguard/events/weapon")[0].retain

        async with Subscriber(broker, "campusguard/#") as late:
            await late.settle()  # every retained message has arrived
            retained = {r.topic: r for r in late.received}
            assert all(r.retain for r in late.received)
            assert (
                json.loads(retained[f"campusguard/incidents/{weapon.id}"].payload)["delivery_key"]
                == f"{weapon.id}:mqtt"
            )
            assert json.loads(retained[f"campusguard/incidents/{drill.id}"].payload)["exercise"] is True
            assert retained["campusguard/cameras/gym/weapon"].text == "ON"
            assert retained["campusguard/cameras/lot/intrusion"].text == "ON"
            assert json.loads(retained["campusguard/cameras/lot/intrusion/attributes"].payload)["exercise"] is True
            assert retained["campusguard/status"].text == "online"
            assert not [t for t in retained if t.startswith("campusguard/events/")]

        await core.api.raise_incident(resolved(weapon), ["mqtt"])
        await core.wait_delivered("mqtt", 3)
        await live.wait_for(lambda: len(live.on("campusguard/events/weapon")) == 2, what="the resolved event")
        cleared = live.last(f"campusguard/incidents/{weapon.id}")
        assert cleared is not None and cleared.payload == b""
        last = json.loads(live.on("campusguard/events/weapon")[-1].payload)
        assert last["change"] == "resolved" and last["delivery_key"] == f"{weapon.id}:1:mqtt"

        async with Subscriber(broker, "campusguard/incidents/+", "campusguard/cameras/#") as after:
            await after.settle()
            topics = {r.topic for r in after.received}
            assert f"campusguard/incidents/{weapon.id}" not in topics
            assert f"campusguard/incidents/{drill.id}" in topics
            assert after.last("campusguard/cameras/gym/weapon").text == "OFF"  # type: ignore[union-attr]
        assert await outbox(core) == {"delivered": 3}


async def test_sensor_stays_on_for_an_incident_open_before_a_restart(tmp_path: Path, broker: Mosquitto) -> None:
    first, second = make_incident(kind="fight", camera_id="gym"), make_incident(kind="fight", camera_id="gym")
    before = notifier(tmp_path, broker)
    await before.start()
    await before.notify(first)
    await before.stop()

    after = notifier(tmp_path, broker)  # a new process: it learns what is open from the broker
    await after.start()
    try:
        async with Subscriber(broker, "campusguard/cameras/gym/#") as sensor:
            await after.notify(second)
            await after.notify(resolved(second))
            await sensor.wait_for(lambda: len(sensor.on("campusguard/cameras/gym/fight/attributes")) >= 3)
            assert sensor.last("campusguard/cameras/gym/fight").text == "ON"  # type: ignore[union-attr]
            attributes = json.loads(sensor.on("campusguard/cameras/gym/fight/attributes")[-1].payload)
            assert attributes["open_incidents"] == [first.id]
            await after.notify(resolved(first))
            await sensor.wait_for(lambda: sensor.last("campusguard/cameras/gym/fight").text == "OFF")  # type: ignore[union-attr]
    finally:
        await after.stop()


# -- 2. Home Assistant discovery ------------------------------------------------------------------

HA_DEVICE_CLASSES = {"safety", "problem", "connectivity", "tamper"}


async def test_home_assistant_discovery_configs(tmp_path: Path, broker: Mosquitto) -> None:
    cameras = ("gym", "Front Gate")
    mqtt = notifier(tmp_path, broker, cameras)
    await mqtt.start()
    try:
        async with Subscriber(broker, "homeassistant/#", "campusguard/status") as ha:
            expected = len(cameras) * (1 + len(SENSOR_KINDS))
            await ha.wait_for(lambda: len(ha.received) >= expected + 1, what="discovery configs")
            await mqtt.stop()
            await ha.wait_for(lambda: ha.last("campusguard/status").text == "offline")  # type: ignore[union-attr]
    finally:
        await mqtt.stop()
    configs = {r.topic: r for r in ha.received if r.topic.startswith("homeassistant/")}
    assert len(configs) == expected and all(r.retain for r in configs.values())
    unique_ids = []
    for topic, message in configs.items():
        assert re.fullmatch(r"homeassistant/binary_sensor/campusguard/[A-Za-z0-9_-]+/config", topic), topic
        config = json.loads(message.payload)
        for key in ("name", "unique_id", "default_entity_id", "state_topic", "payload_on", "payload_off"):
            assert isinstance(config[key], str) and config[key], (topic, key)
        assert config["default_entity_id"] == f"binary_sensor.{config['unique_id']}"
        assert config["device_class"] in HA_DEVICE_CLASSES
        assert config["availability_topic"] == "campusguard/status"
        assert (config["payload_available"], config["payload_not_available"]) == ("online", "offline")
        device = config["device"]
        assert device["manufacturer"] == "campusguard" and device["model"] and device["sw_version"]
        assert isinstance(device["identifiers"], list) and device["identifiers"] and device["name"]
        assert config["origin"]["name"] == "campusguard"
        assert config["state_topic"].startswith("campusguard/cameras/")
        unique_ids.append(config["unique_id"])
    assert len(set(unique_ids)) == len(unique_ids)
    gym = json.loads(configs["homeassistant/binary_sensor/campusguard/gym_weapon/config"].payload)
    assert (gym["state_topic"], gym["payload_on"], gym["payload_off"]) == (
        "campusguard/cameras/gym/weapon",
        "ON",
        "OFF",
    )
    assert gym["device_class"] == "safety"
    assert gym["json_attributes_topic"] == "campusguard/cameras/gym/weapon/attributes"
    link = json.loads(configs["homeassistant/binary_sensor/campusguard/gym_connectivity/config"].payload)
    assert (link["device_class"], link["payload_on"]) == ("connectivity", "online")
    assert link["state_topic"] == "campusguard/cameras/gym/availability"
    # "Front Gate" is no valid id: it gets a slug, while its state topic keeps the camera's name.
    gate = [json.loads(m.payload) for t, m in configs.items() if "front_gate" in t and t.endswith("_fight/config")]
    assert gate and gate[0]["state_topic"] == "campusguard/cameras/Front_Gate/fight"
    assert [r.text for r in ha.on("campusguard/status")] == ["online", "offline"]  # a clean stop says offline


async def test_discovery_can_be_turned_off(tmp_path: Path, broker: Mosquitto) -> None:
    mqtt = notifier(tmp_path, broker, ("gym",), discovery=False, prefix="school/north")
    await mqtt.start()
    try:
        async with Subscriber(broker, "#") as everything:
            await everything.settle()
    finally:
        await mqtt.stop()
    assert [r.topic for r in everything.received] == ["school/north/status"]


# -- 3. last will ---------------------------------------------------------------------------------

WILL_SCRIPT = """
import asyncio, sys, tempfile
from pathlib import Path
from campusguard.plugins.notifiers.mqtt import MqttNotifier
from campusguard.sdk.testing import make_context

async def main() -> None:
    config = MqttNotifier.Config(host="127.0.0.1", port=int(sys.argv[1]), keepalive=5)
    notifier = MqttNotifier("will", config, make_context("will", Path(tempfile.mkdtemp())))
    await notifier.start()
    print("READY", sys.argv[1], flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_last_will_says_offline_when_the_process_is_killed(broker: Mosquitto) -> None:
    async with Subscriber(broker, "campusguard/status") as status:
        process = PeerProcess([sys.executable, "-c", WILL_SCRIPT, str(broker.port)]).start()
        try:
            await status.wait_for(lambda: [r.text for r in status.received] == ["online"], what="online")
            assert process.process is not None
            process.process.kill()  # SIGKILL: no clean disconnect, only the will can tell
            await status.wait_for(lambda: status.last("campusguard/status").text == "offline", what="the will")  # type: ignore[union-attr]
        finally:
            process.stop()
    async with Subscriber(broker, "campusguard/status") as late:
        await late.wait_for(lambda: late.received, what="retained status")
        assert (late.received[0].text, late.received[0].retain) == ("offline", True)


# -- 4. the broker goes away for a while -----------------------------------------------------------


async def test_broker_outage_delivers_everything_in_order_once(campusguard_core: Any, tmp_path: Path) -> None:
    count = 20
    broker = Mosquitto(tmp_path / "broker", persistence=True).start()  # keeps the subscriber's session
    try:
        async with start_core(campusguard_core, core_config(broker)) as core:
            await wait_state(core, "loaded")
            events = Subscriber(broker, "campusguard/events/#", identifier="outage-test", clean_session=False)
            await events.connect()
            broker.stop()
            for i in range(count):
                await core.api.raise_incident(make_incident(id=f"out-{i:02d}", kind="loitering", camera_id="gym"))
            worker = core.api.workers["mqtt"]  # type: ignore[attr-defined]
            await events.wait_for(lambda: worker.failures >= 2, what="failed attempts while the broker is down")
            assert await outbox(core) == {"pending": count}

            broker.start()  # the same port
            await events.reconnect()
            await core.wait_delivered("mqtt", count, timeout=10)
            await events.wait_for(lambda: len(events.received) >= count, what=f"{count} events")
            await events.settle()  # a duplicate would have arrived by now
            await events.close()
            assert await outbox(core) == {"delivered": count}
            assert core.state("notifiers", "mqtt") == "loaded"
    finally:
        broker.kill()
    keys = [json.loads(r.payload)["delivery_key"] for r in events.received]
    assert keys == [f"out-{i:02d}:mqtt" for i in range(count)]


# -- 5. refused credentials -----------------------------------------------------------------------


async def test_bad_password_fails_fast_with_a_clear_message_and_loses_nothing(
    campusguard_core: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CG_TEST_MQTT_PASSWORD", "not-the-password")
    extra = f'username = "{USER}"\npassword = {{ env = "CG_TEST_MQTT_PASSWORD" }}'
    with Mosquitto(tmp_path / "broker", users={USER: PASSWORD}) as broker:
        started = time.monotonic()
        async with start_core(campusguard_core, core_config(broker, extra)) as core:
            await wait_state(core, "failed")
            assert time.monotonic() - started < 5
            error = core.error("notifiers", "mqtt") or ""
            assert "authentication failed" in error and f"user {USER!r}" in error
            assert f"{broker.host}:{broker.port}" in error and "not-the-password" not in error
            for _ in range(3):
                await core.api.raise_incident(make_incident())
            assert await outbox(core) == {"pending": 3}


async def test_password_revoked_while_running_stops_the_notifier_and_keeps_deliveries(
    campusguard_core: Any, tmp_path: Path
) -> None:
    extra = f'username = "{USER}"\npassword = "{PASSWORD}"'
    broker = Mosquitto(tmp_path / "broker", users={USER: PASSWORD}).start()
    try:
        async with start_core(campusguard_core, core_config(broker, extra)) as core:
            await wait_state(core, "loaded")
            await core.api.raise_incident(make_incident())
            await core.wait_delivered("mqtt", 1)
            broker.stop()
            broker.users = {USER: "a-new-password"}
            broker.start()
            await core.api.raise_incident(make_incident())
            await wait_state(core, "failed")
            assert f"refused user {USER!r}" in (core.error("notifiers", "mqtt") or "")
            assert await outbox(core) == {"delivered": 1, "pending": 1}
    finally:
        broker.kill()


# -- 6. camera availability from the bus ----------------------------------------------------------


async def test_camera_availability_follows_bus_events(campusguard_core: Any, broker: Mosquitto) -> None:
    topic = "campusguard/cameras/gym/availability"

    def report(active: bool) -> CameraEvent:
        return CameraEvent(camera_id="gym", topic=CAMERA_AVAILABILITY_EVENT, kind=CameraEventKind.OTHER, active=active)

    async with start_core(campusguard_core, core_config(broker)) as core, Subscriber(broker, topic) as live:
        await wait_state(core, "loaded")
        core.api.bus.publish(CAMERA_EVENTS, CameraEvent(camera_id="gym", topic="tns1:VideoSource/MotionAlarm"))
        core.api.bus.publish(CAMERA_EVENTS, report(False))
        await live.wait_for(lambda: [r.text for r in live.received] == ["offline"], what="offline")
        async with Subscriber(broker, topic) as late:
            await late.wait_for(lambda: late.received, what="retained availability")
            assert (late.received[0].text, late.received[0].retain) == ("offline", True)
        core.api.bus.publish(CAMERA_EVENTS, report(True))
        await live.wait_for(lambda: [r.text for r in live.received] == ["offline", "online"], what="online")
        # The core's own stall detection reports through incidents: those set it too.
        await core.api.raise_incident(make_incident(kind="camera_offline", camera_id="gym"))
        await live.wait_for(lambda: live.last(topic).text == "offline", what="offline from an incident")  # type: ignore[union-attr]


# -- TLS --------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # paho 2.2 leaves the socket of a failed handshake to the GC
async def test_tls_with_the_schools_ca_and_a_clear_error_without_it(tmp_path: Path) -> None:
    with Mosquitto(tmp_path / "broker", tls=True) as broker:
        assert broker.ca_file is not None
        mqtt = notifier(tmp_path, broker, ca_file=str(broker.ca_file))
        async with Subscriber(broker, "campusguard/events/#") as events:
            await mqtt.start()
            try:
                await mqtt.notify(make_incident())
                await events.wait_for(lambda: events.received, what="an event over TLS")
            finally:
                await mqtt.stop()
        untrusted = notifier(tmp_path, broker, tls=True)  # the system CAs do not know the school's CA
        with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED") as caught:
            await untrusted.start()
        assert type(caught.value).__name__ == "NotReady"
        await untrusted.stop()
        del caught
        gc.collect()  # closes that socket here, where its warning is ignored


# -- connection edge cases --------------------------------------------------------------------------


async def test_unreachable_broker_names_host_and_port(tmp_path: Path) -> None:
    port = free_port()
    mqtt = MqttNotifier("mqtt", MqttNotifier.Config(host="127.0.0.1", port=port), make_context("mqtt", tmp_path))
    with pytest.raises(Exception, match=f"127.0.0.1:{port} unreachable") as caught:
        await mqtt.start()
    assert type(caught.value).__name__ == "NotReady"
    await mqtt.stop()


@pytest.fixture
async def silent_server() -> AsyncIterator[int]:
    """Accepts TCP connections and never answers: a broker that hangs, or the wrong port."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    yield int(server.sockets[0].getsockname()[1])
    for writer in held:
        writer.close()
    server.close()
    await server.wait_closed()


@pytest.mark.usefixtures("campusguard_no_lingering")
async def test_a_broker_that_never_answers_is_not_ready_within_the_deadline(tmp_path: Path, silent_server: int) -> None:
    config = MqttNotifier.Config(host="127.0.0.1", port=silent_server, connect_timeout=0.5)
    mqtt = MqttNotifier("mqtt", config, make_context("mqtt", tmp_path))
    started = time.monotonic()
    with pytest.raises(Exception, match="unreachable") as caught:
        await mqtt.start()
    assert type(caught.value).__name__ == "NotReady" and time.monotonic() - started < 2
    await mqtt.stop()


async def test_notify_after_the_connection_drops_is_not_ready_then_reconnects(
    tmp_path: Path, broker: Mosquitto
) -> None:
    mqtt = notifier(tmp_path, broker, connect_timeout=1)
    await mqtt.start()
    try:
        broker.stop()
        await asyncio.wait_for(_until_lost(mqtt), 5)
        with pytest.raises(Exception, match="unreachable") as caught:
            await mqtt.notify(make_incident())
        assert type(caught.value).__name__ == "NotReady"
        broker.start()
        async with Subscriber(broker, "campusguard/events/#") as events:
            incident = make_incident()
            await mqtt.notify(incident)
            await events.wait_for(lambda: events.received, what="the event after reconnecting")
            assert json.loads(events.received[0].payload)["id"] == incident.id
    finally:
        await mqtt.stop()


async def _until_lost(mqtt: MqttNotifier) -> None:
    while mqtt._link is not None and not mqtt._link.lost.is_set():
        await asyncio.sleep(0.01)


def test_config_rejects_wildcards_in_the_prefix() -> None:
    with pytest.raises(ValueError, match="prefix"):
        MqttNotifier.Config.model_validate({"host": "h", "prefix": "campus/#"})
    with pytest.raises(ValueError, match="node_id"):
        MqttNotifier.Config.model_validate({"host": "h", "node_id": "north campus"})
