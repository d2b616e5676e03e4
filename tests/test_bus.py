"""The in-process bus: a slow or hanging subscriber never stalls a publisher or another subscriber."""

from __future__ import annotations

import asyncio

import pytest

from campusguard.core.bus import InProcessBus
from campusguard.sdk import FRAMES, INCIDENTS, OBSERVATIONS, Incident, Observation, Overflow, Topic
from campusguard.sdk.testing import make_frame, make_incident, make_observation


async def test_hanging_subscriber_does_not_stall_publisher_or_others(campusguard_no_lingering) -> None:
    bus = InProcessBus()
    got: list[str] = []

    async def hangs(message: Incident) -> None:
        await asyncio.Event().wait()

    async def healthy(message: Incident) -> None:
        got.append(message.id)

    stuck = bus.subscribe(INCIDENTS, hangs, name="hangs")
    bus.subscribe(INCIDENTS, healthy, name="healthy")
    incidents = [make_incident() for _ in range(100)]
    for incident in incidents:
        bus.publish(INCIDENTS, incident)  # synchronous: returns without waiting for anyone
    for _ in range(50):
        await asyncio.sleep(0)
        if len(got) == 100:
            break
    assert got == [i.id for i in incidents]
    assert stuck.backlog == 99 and stuck.dropped == 0  # never-drop: everything kept for it
    await bus.close(drain_timeout=0.05)


async def test_drop_oldest_counts_drops_for_telemetry(campusguard_no_lingering) -> None:
    bus = InProcessBus()
    release = asyncio.Event()
    seen: list[int] = []

    async def slow(frame: object) -> None:
        await release.wait()
        seen.append(frame.sequence)  # type: ignore[attr-defined]

    sub = bus.subscribe(FRAMES, slow, name="slow", maxsize=5)
    await asyncio.sleep(0)
    for sequence in range(20):
        bus.publish(FRAMES, make_frame(sequence=sequence))
    assert sub.backlog == 5
    release.set()
    await asyncio.sleep(0.01)
    assert sub.dropped == 15
    assert seen == [15, 16, 17, 18, 19]  # the latest frames survive
    await bus.close()


async def test_never_drop_grows_past_bound_and_warns(
    caplog: pytest.LogCaptureFixture, campusguard_no_lingering
) -> None:
    bus = InProcessBus()
    release = asyncio.Event()
    got: list[str] = []

    async def slow(message: Observation) -> None:
        await release.wait()
        got.append(message.id)

    sub = bus.subscribe(OBSERVATIONS, slow, name="rules", maxsize=3)
    sent = [make_observation() for _ in range(10)]
    for message in sent:
        bus.publish(OBSERVATIONS, message)
    assert sub.backlog == 10 and sub.dropped == 0
    assert "10 messages behind" not in caplog.text and "nothing is dropped" in caplog.text
    release.set()
    await bus.close(drain_timeout=1.0)  # drains life-safety subscribers before closing
    assert got == [m.id for m in sent]


async def test_raising_subscriber_is_counted_and_keeps_receiving(campusguard_no_lingering) -> None:
    bus = InProcessBus()
    calls = 0

    async def flaky(message: Incident) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("bug")

    sub = bus.subscribe(INCIDENTS, flaky, name="flaky")
    for _ in range(3):
        bus.publish(INCIDENTS, make_incident())
    await asyncio.sleep(0.01)
    assert (calls, sub.failed, sub.delivered) == (3, 3, 0)
    await bus.close()


async def test_publish_checks_the_message_type(campusguard_no_lingering) -> None:
    bus = InProcessBus()
    with pytest.raises(TypeError, match="topic 'incidents' carries Incident, got Frame"):
        bus.publish(INCIDENTS, make_frame())  # type: ignore[arg-type]
    await bus.close()


async def test_custom_topic_and_overflow_override(campusguard_no_lingering) -> None:
    topic: Topic[Incident] = Topic("custom", Incident)
    bus = InProcessBus()
    got: list[str] = []

    async def handler(message: Incident) -> None:
        got.append(message.id)

    sub = bus.subscribe(topic, handler, name="x", overflow=Overflow.NEVER_DROP, maxsize=1)
    incident = make_incident()
    bus.publish(topic, incident)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert got == [incident.id] and sub.overflow is Overflow.NEVER_DROP
    await sub.close()
    bus.publish(topic, make_incident())  # nobody listening: fine
    await bus.close()
