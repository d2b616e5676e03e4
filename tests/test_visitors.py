"""Visitor management: signed Envoy webhooks into a real core, the roster, watch lists and lockdowns."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest

import campusguard.adapters.visitors.hooks as visitor_hooks
from campusguard.adapters.visitors.envoy import EnvoyWebhookVisitorSystem
from campusguard.adapters.visitors.webhook import sign
from campusguard.core.visitors.store import on_site
from campusguard.sdk import (
    VISITOR_EVENTS,
    AccessControl,
    CameraSource,
    CameraSourceConfig,
    Component,
    DoorCommand,
    Frame,
    Registry,
    Visitor,
    VisitorEvent,
    VisitorSystem,
    hookimpl,
)
from campusguard.sdk.testing import RecordingNotifier, RecordingPlugin
from campusguard.sdk.testing.conformance import VisitorSystemConformance

pytestmark = pytest.mark.usefixtures("campusguard_no_lingering")

SECRET = "envoy-client-secret-for-the-tests"


class EntranceCamera(CameraSource):
    """A camera that sends nothing but can be pointed (``ptz_preset``)."""

    kind = "entrance_camera"
    moved: ClassVar[list[tuple[str, str]]] = []

    class Config(CameraSourceConfig):
        pass

    async def frames(self) -> AsyncIterator[Frame]:  # type: ignore[override]
        await asyncio.Event().wait()
        yield Frame(camera_id=self.name, sequence=0, width=1, height=1)  # never reached

    async def goto_preset(self, preset: str) -> str:
        EntranceCamera.moved.append((self.name, preset))
        return f"{self.name} at {preset}"


class Doors(AccessControl):
    kind = "visitor_test_doors"
    received: ClassVar[list[DoorCommand]] = []

    async def execute(self, command: DoorCommand) -> str:
        Doors.received.append(command)
        return f"{command.door_id} {command.action}"


class PullOnlyVisitors(VisitorSystem):
    """A visitor system that pushes no events but answers ``on_site()`` (the roster merges it in)."""

    kind = "pull_only_visitors"
    emergencies: ClassVar[list[tuple[str, list[str], bool]]] = []

    async def on_site(self) -> list[Visitor]:
        return [Visitor(visitor_id="kiosk-9", display_name="Pat Doe", signed_in_at=datetime.now(UTC))]

    async def on_emergency(self, scenario: str, roster: list[Visitor], *, exercise: bool) -> str:
        PullOnlyVisitors.emergencies.append((scenario, sorted(v.visitor_id for v in roster), exercise))
        return "roster printed at the front desk"


class VisitorTestPlugin:
    @hookimpl
    def campusguard_register_camera_sources(self, registry: Registry[CameraSource]) -> None:
        registry.add(EntranceCamera)

    @hookimpl
    def campusguard_register_adapters(self, registry: Registry[Component]) -> None:
        registry.add(Doors)
        registry.add(PullOnlyVisitors)


PLUGINS = {"recorder": RecordingPlugin(), "visitors": visitor_hooks, "test": VisitorTestPlugin()}

CONFIG = """
[cameras.lobby]
type = "entrance_camera"
stall_timeout = 600
[cameras.front]
type = "entrance_camera"
stall_timeout = 600

[notifiers.office]
type = "recorder"

[adapters.front_office]
type = "envoy_webhooks"
host = "127.0.0.1"
port = 0
client_secret = { env = "CG_TEST_ENVOY_SECRET" }
cameras = { "entrance-7" = "front", "Main Office" = "lobby" }

[adapters.panel]
type = "visitor_test_doors"

[doors.front]
via = "panel"
[scenarios.lockdown]
kind = "lockdown"
doors = ["front"]
[scenarios.shelter]
kind = "hold"
doors = ["front"]

[[rules]]
name = "watchlist"
when = { kinds = ["visitor_watchlist"] }
incident = { severity = "severe", title = "visitor watch list at {camera_id}" }
dedupe_seconds = 0
[[rules.actions]]
do = "ptz_preset"
camera = "front"
preset = "entrance"
"""


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CG_TEST_ENVOY_SECRET", SECRET)
    RecordingNotifier.received.clear()
    EntranceCamera.moved.clear()
    Doors.received.clear()
    PullOnlyVisitors.emergencies.clear()


def envoy_body(
    event: str, entry_id: str, name: str = "Alex Visitor", *, signed_in: datetime | None = None,
    signed_out: datetime | None = None, host: str | None = "Ms. Rivera", entrance: str | None = None,
    location: str = "Main Office", job: str | None = None, **extra_attributes: Any,
) -> bytes:  # fmt: skip
    """A webhook body shaped like Envoy's (its SDK's test factories): meta + the entry as payload."""
    attributes: dict[str, Any] = {
        "full-name": name,
        "email": "alex@example.org",
        "phone-number": "+1 555 0100",
        "host": host,
        "signed-in-at": (signed_in or datetime.now(UTC)).isoformat(),
        "thumbnails": {"large": "https://envoy.example/photo.jpg", "original": None, "small": None},
        "flow-name": "Visitor",
        "private-notes": "secret note",
        "user-data": [{"field": "Purpose", "value": "Parent conference"}],
        **extra_attributes,
    }
    if signed_out is not None:
        attributes["signed-out-at"] = signed_out.strftime("%a, %d %b %Y %H:%M:%S GMT")  # Date.toUTCString()
    relationships: dict[str, Any] = {"location": {"data": {"id": "loc-1", "type": "locations"}}}
    if entrance is not None:
        relationships["visitor-entrance"] = {"data": {"id": entrance, "type": "visitor-entrances"}}
    body = {
        "meta": {
            "event": event,
            "plugin_id": "p-1",
            "install_id": "42",
            "config": {},
            "job": {"id": job or f"job-{event}-{entry_id}", "name": event, "identifier": event},
            "location": {"id": "loc-1", "type": "locations", "attributes": {"name": location}},
            "company": {"id": "c-1", "type": "companies", "attributes": {"name": "District"}},
            "auth": None,
        },
        "payload": {"id": entry_id, "type": "entries", "attributes": attributes, "relationships": relationships},
    }
    return json.dumps(body).encode()


class Envoy:
    """Posts webhooks the way Envoy does, to the adapter running in the core."""

    def __init__(self, core: Any, session: aiohttp.ClientSession) -> None:
        adapter = core.component("adapters", "front_office")
        assert isinstance(adapter, EnvoyWebhookVisitorSystem) and adapter.port
        self.adapter = adapter
        self.url = f"http://127.0.0.1:{adapter.port}/webhooks/envoy"
        self.session = session
        self.core = core
        self.slowest = 0.0

    async def post(self, body: bytes, signature: str | None = "sign", *, settle: bool = True) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if signature == "sign":
            signature = sign(SECRET.encode(), body)
        if signature is not None:
            headers["X-Envoy-Signature"] = signature
        started = time.monotonic()
        async with self.session.post(self.url, data=body, headers=headers) as response:
            answer = await response.json()
        self.slowest = max(self.slowest, time.monotonic() - started)
        if settle:
            await self.core.api.visitors.drain()
        return response.status, answer


async def roster(core: Any) -> list[tuple[str, str, str | None]]:
    return [(e.visitor.visitor_id, e.visitor.display_name, e.visitor.host) for e in await on_site(core.api.store)]


def published(core: Any) -> list[VisitorEvent]:
    events: list[VisitorEvent] = []

    async def keep(event: VisitorEvent) -> None:
        events.append(event)

    core.api.bus.subscribe(VISITOR_EVENTS, keep, name="test-visitor-events")
    return events


async def test_sign_in_and_out_keep_a_roster_that_survives_a_restart(campusguard_core) -> None:
    async with campusguard_core(CONFIG, plugins=PLUGINS) as core, aiohttp.ClientSession() as session:
        envoy = Envoy(core, session)
        events = published(core)
        assert await envoy.post(envoy_body("entry_sign_in", "e-1", "Alex Visitor", entrance="entrance-7")) == (
            200, {"accepted": True, "entry": "e-1", "event": "entry_sign_in"},
        )  # fmt: skip
        status, _ = await envoy.post(envoy_body("entry_sign_in", "e-2", "Sam Guest", host=None))
        assert status == 200
        assert await roster(core) == [("e-1", "Alex Visitor", "Ms. Rivera"), ("e-2", "Sam Guest", None)]
        assert [v.visitor_id for v in await envoy.adapter.on_site()] == ["e-1", "e-2"]
        # The entrance's camera, and nothing about a face or how to reach them, travels with the event.
        first = events[0]
        assert (first.kind, first.source, first.camera_id) == ("signed_in", "front_office", "front")
        assert events[1].camera_id == "lobby"  # no entrance: the location's camera
        text = first.model_dump_json()
        leaks = ("photo.jpg", "alex@example.org", "+1 555 0100", "secret note", "Purpose")
        assert not any(leak in text for leak in leaks)

        later = datetime.now(UTC).replace(microsecond=0)
        status, answer = await envoy.post(envoy_body("entry_sign_out", "e-1", signed_out=later))
        assert (status, answer["accepted"]) == (200, True)
        assert await roster(core) == [("e-2", "Sam Guest", None)]
        assert [v.visitor_id for v in await envoy.adapter.on_site()] == ["e-2"]
        assert envoy.slowest < 2.0
        # Accepted just as the core stops: still recorded (the bus drains the roster before the store closes).
        replay = envoy_body("entry_sign_in", "e-3", "Kim Late")
        assert (await envoy.post(replay, settle=False))[0] == 200

    async with campusguard_core(CONFIG, plugins=PLUGINS) as core, aiohttp.ClientSession() as session:
        envoy = Envoy(core, session)
        assert await roster(core) == [("e-2", "Sam Guest", None), ("e-3", "Kim Late", "Ms. Rivera")]
        assert [v.visitor_id for v in await envoy.adapter.on_site()] == ["e-2", "e-3"]
        (e1,) = [e for e in await core.api.store.db.execute_fetchall("SELECT visitor_id, signed_out_at FROM visitors")
                 if e[0] == "e-1"]  # fmt: skip
        assert datetime.fromisoformat(e1[1]) == later
        # What was accepted before the restart is still recognised when Envoy retries it.
        events = published(core)
        assert (await envoy.post(replay))[1]["duplicate"] is True
        assert events == []


async def test_forged_or_missing_signatures_are_refused_and_change_nothing(campusguard_core) -> None:
    async with campusguard_core(CONFIG, plugins=PLUGINS) as core, aiohttp.ClientSession() as session:
        envoy = Envoy(core, session)
        events = published(core)
        body = envoy_body("entry_sign_in", "e-1")
        forged = sign(b"not the client secret", body)
        status, answer = await envoy.post(body, forged)
        assert status == 401 and "does not match" in answer["error"]
        status, answer = await envoy.post(body, None)
        assert status == 401 and answer["error"] == "missing X-Envoy-Signature header: the webhook is not signed"
        assert (await envoy.post(body, "%%% not base64"))[0] == 401
        # A body changed after signing (a different visitor) is forged too.
        tampered = body.replace(b"Alex Visitor", b"Eve Intruder")
        assert (await envoy.post(tampered, sign(SECRET.encode(), body)))[0] == 401
        assert await roster(core) == [] and events == [] and envoy.adapter.accepted == 0
        # The genuine one still goes through afterwards: refusals remember nothing.
        assert (await envoy.post(body))[0] == 200
        assert await roster(core) == [("e-1", "Alex Visitor", "Ms. Rivera")]


async def test_retries_and_replays_are_processed_once_and_stale_ones_refused(campusguard_core) -> None:
    async with campusguard_core(CONFIG, plugins=PLUGINS) as core, aiohttp.ClientSession() as session:
        envoy = Envoy(core, session)
        events = published(core)
        body = envoy_body("entry_sign_in", "e-1")
        assert (await envoy.post(body))[1]["accepted"] is True
        for _ in range(3):  # Envoy retries until it sees a 2xx: each answered 2xx, none processed again
            status, answer = await envoy.post(body)
            assert (status, answer) == (200, {"duplicate": True, "entry": "e-1", "event": "entry_sign_in"})
        # The same job resent with a fresh body (another auth token), or the same entry's event under
        # another job id: still the same event.
        same_job = envoy_body("entry_sign_in", "e-1", job="job-entry_sign_in-e-1", host="Mr. Chen")
        assert (await envoy.post(same_job))[1].get("duplicate") is True
        assert (await envoy.post(envoy_body("entry_sign_in", "e-1", job="job-other")))[1].get("duplicate") is True
        assert len(events) == 1

        stale = envoy_body("entry_sign_in", "e-2", signed_in=datetime.now(UTC) - timedelta(minutes=10))
        status, answer = await envoy.post(stale)
        assert status == 409
        assert answer["error"].startswith("payload.attributes.signed-in-at is 6")
        assert "older than max_age_seconds=300" in answer["error"]
        future = envoy_body("entry_sign_in", "e-3", signed_in=datetime.now(UTC) + timedelta(hours=1))
        status, answer = await envoy.post(future)
        assert status == 409 and "in the future" in answer["error"]
        assert len(events) == 1 and await roster(core) == [("e-1", "Alex Visitor", "Ms. Rivera")]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "body is not JSON: "),
        (b"", "empty body: expected a JSON object with meta and payload"),
        (b"[1, 2]", "body is a JSON list, expected an object with meta and payload"),
        (b'{"payload": {}}', "meta is missing"),
        (b'{"meta": {"event": 7}}', "meta.event must be str, not int"),
        (b'{"meta": {"event": "entry_sign_in"}}', "payload is missing"),
        (b'{"meta": {"event": "entry_sign_in"}, "payload": {"attributes": {}}}', "payload.id is missing"),
        (
            b'{"meta": {"event": "entry_sign_in"}, "payload": {"id": "e-1", "attributes": {"signed-in-at": "now"}}}',
            "payload.attributes.full-name is missing",
        ),
    ],
)
async def test_malformed_bodies_are_400_naming_what_is_wrong(campusguard_core, body: bytes, reason: str) -> None:
    async with campusguard_core(CONFIG, plugins=PLUGINS) as core, aiohttp.ClientSession() as session:
        envoy = Envoy(core, session)
        status, answer = await envoy.post(body)
        assert status == 400, answer
        assert answer["error"].startswith(reason)


async def test_malformed_entries_and_events_that_are_not_ours(campusguard_core) -> None:
    async with campusguard_core(CONFIG, plugins=PLUGINS) as core, aiohttp.ClientSession() as session:
        envoy = Envoy(core, session)
        events = published(core)
        bad_time = envoy_body("entry_sign_in", "e-1", **{"signed-in-at": "yesterday-ish"})
        status, answer = await envoy.post(bad_time)
        assert status == 400 and answer["error"].startswith("payload.attributes.signed-in-at is not a timestamp")
        no_out = envoy_body("entry_sign_out", "e-1")
        status, answer = await envoy.post(no_out)
        assert (status, answer["error"]) == (400, "payload.attributes.signed-out-at is missing")
        blank = envoy_body("entry_sign_in", "e-1", name="  ")
        assert await envoy.post(blank) == (400, {"error": "payload.attributes.full-name is empty"})
        # An event this adapter does not handle is acknowledged, or Envoy would retry it for ten minutes.
        status, answer = await envoy.post(envoy_body("invite_created", "i-1"))
        assert status == 200 and "not a visitor sign-in" in answer["ignored"]
        # Wrong path or method: aiohttp's own answers.
        async with session.get(envoy.url) as response:
            assert response.status == 405
        async with session.post(envoy.url + "/x", data=b"{}") as response:
            assert response.status == 404
        async with session.post(envoy.url, data=b"x" * 300_000) as response:
            assert response.status == 413  # over max_body_bytes
        assert events == [] and envoy.slowest < 2.0


async def test_a_denied_watchlist_visitor_raises_an_incident_and_points_the_camera(campusguard_core) -> None:
    async with campusguard_core(CONFIG, plugins=PLUGINS) as core, aiohttp.ClientSession() as session:
        envoy = Envoy(core, session)
        status, _ = await envoy.post(envoy_body("entry_blacklist_deny", "e-9", "Flagged Person", entrance="entrance-7"))
        assert status == 200
        await core.api.rules.drain()
        (incident,) = await core.api.store.list_incidents()
        assert (incident.kind, incident.camera_id, incident.confidence) == ("visitor_watchlist", "front", 1.0)
        assert incident.title == "visitor watch list at front" and incident.rule == "watchlist"
        assert "Flagged Person" not in incident.model_dump_json()  # the opaque id only, never a name or photo
        await core.wait_delivered("office", 1)
        deadline = time.monotonic() + 10
        while not EntranceCamera.moved and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert EntranceCamera.moved == [("front", "entrance")]
        (audit,) = [e for e in await core.api.store.audit_entries() if e.action == "visitor.watchlist_deny"]
        assert (audit.actor, audit.subject, audit.detail["camera"]) == ("visitors:front_office", "e-9", "front")
        assert await roster(core) == []  # denied: never on site

        # A review at a place with no camera of its own: the site's first camera; a new incident.
        unknown = envoy_body("entry_blacklist_review", "e-10", location="Annex")
        assert (await envoy.post(unknown))[0] == 200
        await core.api.rules.drain()
        newest = (await core.api.store.list_incidents(limit=1))[0]
        assert (newest.kind, newest.camera_id) == ("visitor_watchlist", "lobby")


async def test_a_lockdown_announces_who_is_on_site_and_tells_the_visitor_systems(campusguard_core) -> None:
    config = CONFIG + '\n[adapters.kiosk]\ntype = "pull_only_visitors"\n'
    async with campusguard_core(config, plugins=PLUGINS) as core, aiohttp.ClientSession() as session:
        envoy = Envoy(core, session)
        for entry, name in (("e-1", "Alex Visitor"), ("e-2", "Sam Guest")):
            assert (await envoy.post(envoy_body("entry_sign_in", entry, name)))[0] == 200
        assert (await envoy.post(envoy_body("entry_sign_out", "e-2", signed_out=datetime.now(UTC))))[0] == 200

        results = await core.api.doors.scenario("lockdown", requested_by="ms.rivera", exercise=True, incident_id="i-7")
        assert [(r.door, r.outcome) for r in results] == [("front", "done")] and Doors.received[0].exercise
        await core.api.visitors.drain()
        (roster_incident,) = [i for i in await core.api.store.list_incidents() if i.kind == "visitor_roster"]
        assert roster_incident.exercise and roster_incident.severity == "info"
        details = roster_incident.details
        assert (details["scenario"], details["scenario_kind"], details["incident"], details["count"]) == (
            "lockdown", "lockdown", "i-7", 2,
        )  # fmt: skip
        on_site_now = {(v["source"], v["visitor_id"], v["display_name"]) for v in details["visitors"]}
        assert on_site_now == {("front_office", "e-1", "Alex Visitor"), ("kiosk", "kiosk-9", "Pat Doe")}
        assert all("thumbnails" not in v and "email" not in v for v in details["visitors"])

        await core.wait_delivered("office", 1)
        (delivered,) = [i for i in RecordingNotifier.received if i.kind == "visitor_roster"]
        assert delivered.exercise and delivered.details["count"] == 2
        # Every visitor system was told, with the whole roster, and what each said is audited.
        assert PullOnlyVisitors.emergencies == [("lockdown", ["e-1", "kiosk-9"], True)]
        told = {e.subject: e.detail for e in await core.api.store.audit_entries() if e.action.startswith("visitors.on")}
        assert told["kiosk"]["result"] == "roster printed at the front desk"
        assert "Envoy's emergency notifications have no public API" in told["front_office"]["result"]
        assert told["front_office"]["roster_incident"] == roster_incident.id and told["kiosk"]["exercise"] is True

        # Releasing it, a dry run or a hold announces nothing more.
        await core.api.doors.scenario("lockdown", release=True, requested_by="ms.rivera", authenticated_as="rivera")
        await core.api.doors.scenario("lockdown", requested_by="ms.rivera", dry_run=True)
        await core.api.doors.scenario("shelter", requested_by="ms.rivera")
        await core.api.visitors.drain()
        assert len([i for i in await core.api.store.list_incidents() if i.kind == "visitor_roster"]) == 1


async def test_a_site_without_visitor_management_gets_no_roster_incident(campusguard_core) -> None:
    config = CONFIG.split("[adapters.front_office]")[0] + CONFIG.split('"Main Office" = "lobby" }')[1]
    async with campusguard_core(config, plugins=PLUGINS) as core:
        await core.api.doors.scenario("lockdown", requested_by="ms.rivera")
        await core.api.visitors.drain()
        assert [i.kind for i in await core.api.store.list_incidents()] == []
        assert len(Doors.received) == 1


class TestEnvoyWebhooksConformance(VisitorSystemConformance):
    component_class = EnvoyWebhookVisitorSystem

    def valid_config(self) -> dict[str, Any]:
        return {"client_secret": "s3cret", "port": 0}


async def test_the_state_file_keeps_no_photo_and_a_busy_port_is_not_ready(tmp_path: Path) -> None:
    from campusguard.sdk import NotReady
    from campusguard.sdk.testing.stubs import StubCore, make_context

    core = StubCore(tmp_path)
    config = EnvoyWebhookVisitorSystem.Config.model_validate({"client_secret": "s", "port": 0})
    first = EnvoyWebhookVisitorSystem("one", config, make_context("one", tmp_path, core))
    await first.start()
    try:
        body = envoy_body("entry_sign_in", "e-1")
        answer = first.receive(body, sign(b"s", body))
        assert answer["accepted"] is True and core.bus.published[0][0] == "visitor_events"
        busy = EnvoyWebhookVisitorSystem.Config.model_validate({"client_secret": "s", "port": first.port})
        second = EnvoyWebhookVisitorSystem("two", busy, make_context("two", tmp_path / "two", core))
        with pytest.raises(NotReady, match=r"cannot listen on 127\.0\.0\.1"):
            await second.start()
        await second.stop()
    finally:
        await first.stop()
    state = (tmp_path / "envoy-webhooks.json").read_text()
    assert "e-1" in state and "photo" not in state and "alex@example.org" not in state
    with pytest.raises(ValueError, match="path must start with '/'"):
        EnvoyWebhookVisitorSystem.Config.model_validate({"client_secret": "s", "path": "webhooks"})
