"""The vendor REST base and the Verkada adapter, against Prism serving Verkada's OpenAPI description.

Prism runs with ``--errors``: a request the description does not allow is answered 400 (Verkada documents 400,
not 422, for a bad request) or 401 (no token), so every command that succeeds here sent what Verkada documents.
What Prism cannot play (a key that is present but wrong, a token that expires server-side, Retry-After, several
pages) is played by a small aiohttp server in this file that follows the same description.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from aiohttp import web
from peers.prism import Prism, free_port

from campusguard.adapters.vendor_rest.base import (
    ReplayGuard,
    RestClient,
    UnsupportedAction,
    VendorNotFound,
    VendorRequestError,
    VendorResponseError,
    retry_after_seconds,
)
from campusguard.adapters.vendor_rest.verkada import VERKADA_SIGNATURE, VerkadaAccessControl
from campusguard.sdk import AuthFailed, DoorAction, DoorCommand, DoorEvent, DoorEventKind, NotReady
from campusguard.sdk.testing.conformance import AccessControlConformance, ErrorMapping
from campusguard.sdk.testing.stubs import StubCore, make_context

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "tests" / "fixtures" / "openapi" / "verkada.yaml"
SIDE = "72592e74-8763-4917-8c21-f60dd9fc071f"  # the two doors of the description's example
MAIN = "a1bdd7a6-4392-4116-9853-048587a16ebb"
SCENARIO = "5f0c4d4e-7c3b-4f0e-9d2a-2b9f8a6f1c11"
USER = "3f8e9a52-0c4d-4b9e-8f7a-5d1c2b3a4e6f"
SECRET = "webhook-shared-secret"

_prism: Prism | None = None


@pytest.fixture(scope="module", autouse=True)
def prism() -> Iterator[Prism]:
    global _prism
    server = Prism(SPEC).start()
    _prism = server
    try:
        yield server
    finally:
        _prism = None
        server.close()


@pytest.fixture
def valid_requests_only(prism: Prism) -> Iterator[None]:
    """Prism's validator found nothing wrong with what the test sent."""
    before = len(prism.violations())
    yield
    assert prism.violations()[before:] == []


def prism_url() -> str:
    assert _prism is not None, "Prism is not running"
    return _prism.url


def options(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "base_url": prism_url(),
        "api_key": "test-api-key",
        "doors": {"door-1": SIDE, "main": MAIN},
        "retries": 2,
        "backoff": 0.01,
        "timeout": 5,
    }
    return {**base, **changes}


def build(tmp_path: Path, **changes: Any) -> tuple[VerkadaAccessControl, StubCore]:
    core = StubCore(tmp_path)
    config = VerkadaAccessControl.Config.model_validate(options(**changes))
    return VerkadaAccessControl("verkada", config, make_context("verkada", tmp_path, core)), core


@pytest.fixture
async def started(tmp_path: Path) -> AsyncIterator[tuple[VerkadaAccessControl, StubCore]]:
    adapter, core = build(tmp_path)
    await adapter.start()
    try:
        yield adapter, core
    finally:
        await adapter.stop()


def command(door: str, action: DoorAction, by: str = "alice", **fields: Any) -> DoorCommand:
    return DoorCommand(door_id=door, action=action, requested_by=by, **fields)


class Sleeps:
    """Stands in for asyncio.sleep: records each wait, waits for nothing."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)
        await asyncio.sleep(0)


def record_requests(client: RestClient) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    async def hook(request: httpx.Request) -> None:
        seen.append((request.method, request.url.path))

    client.http.event_hooks["request"].append(hook)
    return seen


def prefer(client: RestClient, code: int, path: str, *, times: int | None = None) -> list[str]:
    """Ask Prism for the operation's documented ``code`` answer (Prefer: code=N) on requests to ``path``."""
    marked: list[str] = []

    async def hook(request: httpx.Request) -> None:
        if request.url.path == path and (times is None or len(marked) < times):
            request.headers["Prefer"] = f"code={code}"
            marked.append(path)

    client.http.event_hooks["request"].append(hook)
    return marked


def running(adapter: VerkadaAccessControl) -> RestClient:
    assert adapter.client is not None
    return adapter.client


# -- the API through Prism ---------------------------------------------------------------------------


@pytest.mark.usefixtures("valid_requests_only")
async def test_start_gets_a_token_and_lists_the_doors(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    client = running(adapter)
    assert client.tokens_minted == 1
    assert await adapter.execute(command("main", DoorAction.QUERY))
    assert "Main Entrance" in await adapter.execute(command(MAIN, DoorAction.QUERY))  # a Verkada id as it is


@pytest.mark.usefixtures("valid_requests_only")
async def test_momentary_access_unlocks_as_admin(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    seen = record_requests(running(adapter))
    answer = await adapter.execute(command("door-1", DoorAction.MOMENTARY_ACCESS))
    assert "unlocked momentarily for 5 s (as admin)" in answer
    assert seen == [("POST", "/access/v1/door/admin_unlock")]


@pytest.mark.usefixtures("valid_requests_only")
async def test_unlock_as_the_mapped_verkada_user(tmp_path: Path) -> None:
    adapter, _ = build(tmp_path, unlock_users={"alice": USER})
    await adapter.start()
    try:
        seen = record_requests(running(adapter))
        answer = await adapter.execute(command("door-1", DoorAction.MOMENTARY_ACCESS, by="alice"))
        assert f"as Verkada user {USER}" in answer
        await adapter.execute(command("door-1", DoorAction.MOMENTARY_ACCESS, by="bob"))
        assert seen == [("POST", "/access/v1/door/user_unlock"), ("POST", "/access/v1/door/admin_unlock")]
    finally:
        await adapter.stop()


@pytest.mark.usefixtures("valid_requests_only")
async def test_lockdown_activates_the_scenario_that_locks_the_door(
    started: tuple[VerkadaAccessControl, StubCore],
) -> None:
    adapter, _ = started
    seen = record_requests(running(adapter))
    answer = await adapter.execute(command("door-1", DoorAction.LOCKDOWN, by="rule:lockdown"))
    assert "Verkada scenario 'Lockdown - Interior' activated (2 door(s))" in answer
    assert ("POST", f"/access/v1/scenarios/{SCENARIO}/activate") in seen


@pytest.mark.usefixtures("valid_requests_only")
async def test_a_lockdown_of_every_door_activates_the_scenario_once(
    started: tuple[VerkadaAccessControl, StubCore],
) -> None:
    adapter, _ = started
    seen = record_requests(running(adapter))
    answers = await asyncio.gather(
        *(adapter.execute(command(door, DoorAction.LOCKDOWN, by="rule:lockdown")) for door in ("door-1", "main"))
    )
    assert all("activated" in a for a in answers)
    assert [s for s in seen if s[0] == "POST"] == [("POST", f"/access/v1/scenarios/{SCENARIO}/activate")]


@pytest.mark.usefixtures("valid_requests_only")
async def test_lockdown_release_releases_the_scenario(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    seen = record_requests(running(adapter))
    answer = await adapter.execute(command("door-1", DoorAction.LOCKDOWN_RELEASE, exercise=True))
    assert "released" in answer and answer.endswith("(exercise)")
    assert ("POST", f"/access/v1/scenarios/{SCENARIO}/release") in seen


@pytest.mark.usefixtures("valid_requests_only")
async def test_a_configured_scenario_by_name(tmp_path: Path) -> None:
    adapter, _ = build(tmp_path, lockdown_scenario="Lockdown - Interior")
    await adapter.start()
    try:
        assert "activated" in await adapter.execute(command("door-1", DoorAction.LOCKDOWN, by="rule:x"))
    finally:
        await adapter.stop()
    adapter, _ = build(tmp_path, door_scenarios={"door-1": "No Such Scenario"})
    await adapter.start()
    try:
        with pytest.raises(LookupError, match="No Such Scenario"):
            await adapter.execute(command("door-1", DoorAction.LOCKDOWN, by="rule:x"))
    finally:
        await adapter.stop()


@pytest.mark.usefixtures("valid_requests_only")
async def test_query_says_the_door_its_lockdowns_and_its_last_lock_event(
    started: tuple[VerkadaAccessControl, StubCore],
) -> None:
    adapter, _ = started
    seen = record_requests(running(adapter))
    answer = await adapter.execute(command("door-1", DoorAction.QUERY))
    assert answer.startswith(f"Side Entry (Verkada {SIDE}) at site Interior")
    assert "no lockdown active (1 lockdown scenario(s) lock it)" in answer
    assert "last lock event: locked at 2025-01-06T08:02:11Z" in answer
    assert ("GET", "/events/v1/access") in seen  # paged with page_size, start_time, end_time: Prism validated them


async def test_lock_and_holding_unlocked_are_refused_and_nothing_is_sent(
    started: tuple[VerkadaAccessControl, StubCore],
) -> None:
    adapter, _ = started
    seen = record_requests(running(adapter))
    with pytest.raises(UnsupportedAction, match="no command to lock one door"):
        await adapter.execute(command("door-1", DoorAction.LOCK, by="rule:x"))
    with pytest.raises(UnsupportedAction, match="cannot hold a door unlocked"):
        await adapter.execute(command("door-1", DoorAction.UNLOCK))
    assert seen == []


@pytest.mark.usefixtures("valid_requests_only")
async def test_hold_unlock_momentary_makes_an_unlock_a_momentary_one(tmp_path: Path) -> None:
    adapter, _ = build(tmp_path, hold_unlock="momentary")
    await adapter.start()
    try:
        assert "relocks by itself" in await adapter.execute(command("door-1", DoorAction.UNLOCK))
        assert "nothing sent" in await adapter.execute(command("door-1", DoorAction.UNLOCK, dry_run=True))
    finally:
        await adapter.stop()


async def test_an_unknown_door_names_itself(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    with pytest.raises(LookupError, match="'kitchen'"):
        await adapter.execute(command("kitchen", DoorAction.MOMENTARY_ACCESS))


async def test_prism_validates_requests(started: tuple[VerkadaAccessControl, StubCore], prism: Prism) -> None:
    """The guard behind every success above: a body Verkada does not document is refused."""
    adapter, _ = started
    client = running(adapter)
    with pytest.raises(VendorRequestError) as refused:
        await client.request("POST", "/access/v1/door/admin_unlock", json_body={"door_id": "no-uuid"}, idempotent=False)
    assert refused.value.status == 400
    assert 'request.body.door_id Request body property door_id must match format "uuid"' in prism.violations()
    with pytest.raises(VendorRequestError) as too_big:
        await client.request("GET", "/events/v1/access", params={"page_size": 500})
    assert too_big.value.status == 400
    with pytest.raises(VendorNotFound):
        await client.request("GET", "/access/v1/no_such_thing")


async def test_a_missing_key_is_auth_failed(tmp_path: Path) -> None:
    adapter, _ = build(tmp_path, api_key="")
    with pytest.raises(AuthFailed, match="refused the API key"):
        await adapter.start()
    await adapter.stop()


@pytest.mark.usefixtures("valid_requests_only")
async def test_429_is_retried_then_succeeds(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    client = running(adapter)
    client.sleep = sleeps = Sleeps()
    marked = prefer(client, 429, "/access/v1/door/admin_unlock", times=2)
    answer = await adapter.execute(command("door-1", DoorAction.MOMENTARY_ACCESS))
    assert "unlocked" in answer and len(marked) == 2
    assert len(sleeps.waits) == 2 and all(w > 0 for w in sleeps.waits)  # Prism sends no Retry-After: backoff


async def test_429_forever_is_not_ready(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    client = running(adapter)
    client.sleep = sleeps = Sleeps()
    marked = prefer(client, 429, "/access/v1/door/admin_unlock")
    with pytest.raises(NotReady, match=r"rate limited \(HTTP 429\) after 3 tries"):
        await adapter.execute(command("door-1", DoorAction.MOMENTARY_ACCESS))
    assert len(marked) == 3 and len(sleeps.waits) == 2


async def test_500_is_not_ready_and_an_unlock_is_not_repeated(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    client = running(adapter)
    client.sleep = Sleeps()
    reads = prefer(client, 500, "/access/v1/doors")
    with pytest.raises(NotReady, match=r"failing \(HTTP 500\) after 3 tries"):
        await adapter.execute(command("door-1", DoorAction.QUERY))
    assert len(reads) == 3  # a read is safe to repeat
    unlocks = prefer(client, 500, "/access/v1/door/admin_unlock")
    with pytest.raises(NotReady, match="may have been carried out"):
        await adapter.execute(command("door-1", DoorAction.MOMENTARY_ACCESS))
    assert len(unlocks) == 1  # an unlock is not: the door may have opened


@pytest.mark.usefixtures("valid_requests_only")
async def test_concurrent_requests_share_one_new_token(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    client = running(adapter)
    client.clock = lambda: time.monotonic() + 3600  # every token so far has expired
    await asyncio.gather(*(client.request("GET", "/access/v1/doors") for _ in range(5)))
    assert client.tokens_minted == 2


@pytest.mark.usefixtures("valid_requests_only")
async def test_the_token_is_minted_again_before_it_expires(started: tuple[VerkadaAccessControl, StubCore]) -> None:
    adapter, _ = started
    client = running(adapter)
    now = [time.monotonic() + 1800 - 61]  # 30-minute token, minted at start; renewed 60 s before the end
    client.clock = lambda: now[0]
    await adapter.execute(command("door-1", DoorAction.QUERY))
    assert client.tokens_minted == 1
    now[0] += 2
    await adapter.execute(command("door-1", DoorAction.QUERY))
    assert client.tokens_minted == 2
    await adapter.execute(command("door-1", DoorAction.QUERY))
    assert client.tokens_minted == 2


async def test_not_running_is_not_ready(tmp_path: Path) -> None:
    adapter, _ = build(tmp_path)
    await adapter.start()
    await adapter.stop()
    with pytest.raises(NotReady):
        await adapter.execute(command("door-1", DoorAction.MOMENTARY_ACCESS))


def test_a_verkada_door_may_be_mapped_once() -> None:
    with pytest.raises(ValueError, match="mapped more than once"):
        VerkadaAccessControl.Config.model_validate(options(doors={"a": SIDE, "b": SIDE}))


# -- what Prism cannot play: a small server that follows the same description --------------------------


class VerkadaTwin:
    """Checks the key's value, expires tokens, answers Retry-After and several pages."""

    def __init__(self) -> None:
        self.key = "right-key"
        self.issued: list[str] = []
        self.revoked: set[str] = set()
        self.doors_answers: list[web.Response] = []  # answered first, in order, by GET /access/v1/doors
        self.pages: dict[str | None, dict[str, Any]] = {}
        self.page_queries: list[dict[str, str]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _token(self, request: web.Request) -> web.Response:
        if request.headers.get("x-api-key") != self.key:
            return web.json_response({"id": "0e2d", "message": "Invalid API key", "data": None}, status=401)
        token = f"token-{len(self.issued) + 1}"
        self.issued.append(token)
        return web.json_response({"token": token})

    def _authorized(self, request: web.Request) -> bool:
        token = request.headers.get("x-verkada-auth")
        return token in self.issued and token not in self.revoked

    async def _doors(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"id": "0e2d", "message": "Token expired", "data": None}, status=401)
        if self.doors_answers:
            return self.doors_answers.pop(0)
        return web.json_response({"doors": [{"door_id": SIDE, "name": "Side Entry", "site": {"name": "Interior"}}]})

    async def _events(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"id": "0e2d", "message": "Token expired", "data": None}, status=401)
        self.page_queries.append(dict(request.query))
        return web.json_response(self.pages[request.query.get("page_token")])

    async def start(self) -> VerkadaTwin:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_get("/access/v1/doors", self._doors)
        app.router.add_get("/events/v1/access", self._events)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
async def twin() -> AsyncIterator[VerkadaTwin]:
    server = await VerkadaTwin().start()
    try:
        yield server
    finally:
        await server.stop()


async def twin_adapter(tmp_path: Path, twin: VerkadaTwin, **changes: Any) -> VerkadaAccessControl:
    adapter, _ = build(tmp_path, base_url=twin.url, api_key=twin.key, **changes)
    await adapter.start()
    return adapter


async def test_a_wrong_key_is_auth_failed(tmp_path: Path, twin: VerkadaTwin) -> None:
    adapter, _ = build(tmp_path, base_url=twin.url, api_key="wrong-key")
    with pytest.raises(AuthFailed, match=r"HTTP 401 from /token"):
        await adapter.start()
    await adapter.stop()


async def test_a_refused_token_is_replaced_once(tmp_path: Path, twin: VerkadaTwin) -> None:
    adapter = await twin_adapter(tmp_path, twin)
    try:
        client = running(adapter)
        twin.revoked.add("token-1")  # expired on Verkada's side before our clock says so
        body = await client.request("GET", "/access/v1/doors")
        assert body["doors"][0]["door_id"] == SIDE and twin.issued == ["token-1", "token-2"]
        twin.revoked.update({"token-2", "token-3"})  # and the new one is refused too
        with pytest.raises(AuthFailed, match="with a new token too"):
            await client.request("GET", "/access/v1/doors")
        assert twin.issued == ["token-1", "token-2", "token-3"]  # one new token per request, not a loop
    finally:
        await adapter.stop()


async def test_retry_after_is_honoured(tmp_path: Path, twin: VerkadaTwin) -> None:
    adapter = await twin_adapter(tmp_path, twin)
    try:
        client = running(adapter)
        client.sleep = sleeps = Sleeps()
        soon = email.utils.formatdate(time.time() + 30, usegmt=True)
        twin.doors_answers = [
            web.json_response({"message": "Too Many Requests"}, status=429, headers={"Retry-After": "7"}),
            web.json_response({"message": "Unavailable"}, status=503, headers={"Retry-After": soon}),
        ]
        body = await client.request("GET", "/access/v1/doors")
        assert body["doors"]
        assert sleeps.waits[0] == 7.0 and 25 < sleeps.waits[1] <= 30
        twin.doors_answers = [web.json_response({}, status=429, headers={"Retry-After": "3600"})]
        with pytest.raises(NotReady, match="asked to wait 3600s"):
            await client.request("GET", "/access/v1/doors")
    finally:
        await adapter.stop()


async def test_paging_walks_every_page(tmp_path: Path, twin: VerkadaTwin) -> None:
    twin.pages = {
        None: {"events": [{"n": 1}, {"n": 2}], "next_page_token": "p2"},
        "p2": {"events": [{"n": 3}], "next_page_token": "p3"},
        "p3": {"events": [{"n": 4}, {"n": 5}], "next_page_token": None},
    }
    adapter = await twin_adapter(tmp_path, twin)
    try:
        client = running(adapter)
        got = [e["n"] async for e in client.paginate("/events/v1/access", items="events", page_size=2)]
        assert got == [1, 2, 3, 4, 5]
        assert [q.get("page_token") for q in twin.page_queries] == [None, "p2", "p3"]
        assert all(q["page_size"] == "2" for q in twin.page_queries)
        twin.pages["p3"]["next_page_token"] = "p2"  # a cursor that loops
        with pytest.raises(VendorResponseError, match="repeats"):
            _ = [e async for e in client.paginate("/events/v1/access", items="events")]
    finally:
        await adapter.stop()


def test_retry_after_forms() -> None:
    assert retry_after_seconds("12") == 12.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_replay_guard_forgets_after_its_window() -> None:
    now = [0.0]
    guard = ReplayGuard(10.0, 3, clock=lambda: now[0])
    guard.add("a")
    assert "a" in guard
    now[0] = 11.0
    assert "a" not in guard
    for key in "bcde":
        guard.add(key)
    assert "b" not in guard and "e" in guard  # at most three kept


# -- webhooks ----------------------------------------------------------------------------------------


def notification(kind: str = "door_forced_open", door: str = SIDE, **data: Any) -> dict[str, Any]:
    """An Access Control Notification Object as documented (Access Events Webhooks)."""
    now = int(time.time())
    return {
        "webhook_type": "notification",
        "webhook_id": "b2f3c1d0-0000-4000-8000-000000000001",
        "org_id": "7cd47706-f51b-4419-8675-3b9f0ce7c12d",
        "created_at": now,
        "data": {
            "notification_type": kind,
            "device_id": door,
            "created": now,
            "input_value": "8675309",
            "door_id": door,
            "event_id": hashlib.sha1(f"{kind}{door}{data}{time.monotonic_ns()}".encode()).hexdigest(),
            "device_type": "access_control",
            "direction": "Inbound",
            "user_info": {
                "user_id": USER,
                "name": "Jane Roe",
                "email": "jane.roe@example.org",
                "first_name": "Jane",
                "last_name": "Roe",
            },
            **data,
        },
    }


def signed(body: bytes, *, at: float | None = None, secret: str = SECRET) -> dict[str, str]:
    stamp = str(int(time.time() if at is None else at))
    return {
        "Verkada-Signature": f"{stamp}|{VERKADA_SIGNATURE.sign(secret.encode(), body, stamp)}",
        "Content-Type": "application/json",
    }


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[tuple[VerkadaAccessControl, StubCore, str]]:
    adapter, core = build(tmp_path, webhook={"port": 0, "path": "/verkada", "secret": SECRET})
    await adapter.start()
    assert adapter.receiver is not None
    try:
        yield adapter, core, f"http://127.0.0.1:{adapter.receiver.port}/verkada"
    finally:
        await adapter.stop()


def door_events(core: StubCore) -> list[DoorEvent]:
    return [m for topic, m in core.bus.published if topic == "door_events"]


async def post(url: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.post(url, content=body, headers=headers)


@pytest.mark.usefixtures("valid_requests_only")
async def test_a_signed_webhook_becomes_a_door_event(hooked: tuple[VerkadaAccessControl, StubCore, str]) -> None:
    _, core, url = hooked
    body = json.dumps(notification("door_forced_open")).encode()
    started = time.monotonic()
    answer = await post(url, body, signed(body))
    assert answer.status_code == 200 and time.monotonic() - started < 2.0  # Verkada retries after 2 s
    assert answer.json()["status"] == "ok"
    (event,) = door_events(core)
    assert (event.door_id, event.kind, event.source) == ("door-1", DoorEventKind.FORCED_OPEN, "verkada")
    assert event.credential_holder == f"verkada-user:{USER}"
    dumped = event.model_dump_json()
    assert "Jane" not in dumped and "jane.roe" not in dumped and "8675309" not in dumped


@pytest.mark.parametrize(
    ("notification_type", "kind"),
    [
        ("door_held_open", DoorEventKind.HELD_OPEN),
        ("door_keycard_entered_accepted", DoorEventKind.ACCESS_GRANTED),
        ("door_granted", DoorEventKind.ACCESS_GRANTED),
        ("door_keycard_entered_rejected", DoorEventKind.ACCESS_DENIED),
        ("door_rejected", DoorEventKind.ACCESS_DENIED),
        ("door_tamper", DoorEventKind.READER_TAMPER),
        ("door_acu_offline", DoorEventKind.DEVICE_OFFLINE),
    ],
)
async def test_webhook_event_kinds(
    hooked: tuple[VerkadaAccessControl, StubCore, str], notification_type: str, kind: DoorEventKind
) -> None:
    _, core, url = hooked
    body = json.dumps(notification(notification_type, door=MAIN)).encode()
    assert (await post(url, body, signed(body))).status_code == 200
    (event,) = door_events(core)
    assert (event.door_id, event.kind) == ("main", kind)


async def test_a_forged_webhook_is_refused(hooked: tuple[VerkadaAccessControl, StubCore, str]) -> None:
    _, core, url = hooked
    body = json.dumps(notification()).encode()
    forged = await post(url, body, signed(body, secret="guessed"))
    unsigned = await post(url, body, {"Content-Type": "application/json"})
    garbled = await post(url, body, {"Verkada-Signature": "no-pipe-here"})
    tampered = await post(url, body.replace(b"door_forced_open", b"door_granted"), signed(body))
    timeless = await post(
        url, body, {"Verkada-Signature": f"nan|{VERKADA_SIGNATURE.sign(SECRET.encode(), body, 'nan')}"}
    )
    answers = [forged, unsigned, garbled, tampered, timeless]
    assert [r.status_code for r in answers] == [401] * 5
    assert door_events(core) == []


async def test_a_replayed_webhook_is_processed_once(hooked: tuple[VerkadaAccessControl, StubCore, str]) -> None:
    adapter, core, url = hooked
    body = json.dumps(notification()).encode()
    headers = signed(body)
    first, again = await post(url, body, headers), await post(url, body, headers)
    resent = await post(url, body, signed(body, at=time.time() + 1))  # Verkada's resend of the same event
    assert [r.json()["status"] for r in (first, again, resent)] == ["ok", "duplicate", "duplicate"]
    assert len(door_events(core)) == 1
    assert adapter.receiver is not None and adapter.receiver.counts["duplicate"] == 2


async def test_a_stale_webhook_is_refused(hooked: tuple[VerkadaAccessControl, StubCore, str]) -> None:
    _, core, url = hooked
    body = json.dumps(notification()).encode()
    answer = await post(url, body, signed(body, at=time.time() - 3600))
    assert answer.status_code == 401 and "stale" in answer.json()["detail"]
    assert door_events(core) == []


async def test_a_malformed_webhook_is_a_400(hooked: tuple[VerkadaAccessControl, StubCore, str]) -> None:
    _, core, url = hooked
    bodies = [b"not json", b"[1, 2]", json.dumps({"webhook_type": "notification"}).encode()]
    bodies.append(json.dumps(notification(door_id=None, device_id=None)).encode())
    for body in bodies:
        answer = await post(url, body, signed(body))
        assert answer.status_code == 400, body
    assert door_events(core) == []


async def test_an_oversized_webhook_is_refused(tmp_path: Path) -> None:
    adapter, core = build(tmp_path, webhook={"port": 0, "secret": SECRET, "max_body": 1024})
    await adapter.start()
    try:
        assert adapter.receiver is not None
        body = json.dumps(notification(padding="x" * 4096)).encode()
        answer = await post(f"http://127.0.0.1:{adapter.receiver.port}/webhook", body, signed(body))
        assert answer.status_code == 413 and door_events(core) == []
    finally:
        await adapter.stop()


async def test_other_notifications_are_acknowledged_and_ignored(
    hooked: tuple[VerkadaAccessControl, StubCore, str],
) -> None:
    _, core, url = hooked
    body = json.dumps(notification("door_auxoutput_activated")).encode()
    answer = await post(url, body, signed(body))
    assert answer.status_code == 200 and "ignored" in answer.json()["detail"]
    assert door_events(core) == []


@pytest.mark.usefixtures("valid_requests_only")
async def test_a_lock_state_webhook_answers_the_next_query(hooked: tuple[VerkadaAccessControl, StubCore, str]) -> None:
    adapter, core, url = hooked
    body = json.dumps(notification("door_unlocked")).encode()
    assert (await post(url, body, signed(body))).status_code == 200
    assert door_events(core)[0].state == "unlocked"
    assert "last lock event: unlocked at" in await adapter.execute(command("door-1", DoorAction.QUERY))


# -- the SDK's contract ------------------------------------------------------------------------------


class TestVerkadaConformance(AccessControlConformance, ErrorMapping):
    component_class = VerkadaAccessControl
    door: ClassVar[str] = "door-1"

    def valid_config(self) -> dict[str, Any]:
        return options(webhook={"port": 0, "secret": SECRET})

    def unreachable_config(self) -> dict[str, Any]:
        return options(base_url=f"http://127.0.0.1:{free_port()}", retries=1, timeout=2)

    def bad_credentials_config(self) -> dict[str, Any]:
        return options(api_key="")  # Prism refuses a request without the key (the security scheme)
