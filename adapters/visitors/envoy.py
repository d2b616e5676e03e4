"""``envoy_webhooks``: Envoy Visitors' sign-in, sign-out and blocklist webhooks, received directly.

Envoy POSTs ``{"meta": {...}, "payload": <the entry>}`` to a URL, signed with ``X-Envoy-Signature``
(Base64 HMAC-SHA256 of the raw body, keyed with the app's client secret), and retries anything that
is not 2xx (5 times over 10 minutes). So this receiver:

- refuses a missing or wrong signature (401) before it reads the body as JSON;
- answers a webhook it already accepted 2xx again without processing it twice (by body, by
  ``meta.job.id`` and by event + entry id), and refuses (409) one whose time is older than
  ``max_age_seconds`` — together, a captured request replayed later does nothing;
- refuses a malformed body (400) naming what is wrong, and answers every request at once (the
  work is one in-memory publish; the state file is written in the background).

Accepted entries become :class:`~campusguard.sdk.VisitorEvent` on ``VISITOR_EVENTS``: the core keeps
the roster and turns blocklist events into ``visitor_watchlist`` observations. Nothing about a
face reaches campusguard: photos (``thumbnails``), e-mail, phone, notes and custom fields of the
entry are dropped here; the visitor is the entry's opaque id, their name and their host.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from campusguard.sdk import (
    VISITOR_EVENTS,
    ComponentContext,
    NotReady,
    Visitor,
    VisitorEvent,
    VisitorEventKind,
    VisitorSystem,
)

from .webhook import Rejected, ReplayGuard, body_key, check_age, field, parse_json_object, parse_time, verify_signature

if TYPE_CHECKING:
    from aiohttp import web

SIGNATURE_HEADER = "X-Envoy-Signature"
EVENTS: dict[str, VisitorEventKind] = {
    "entry_sign_in": VisitorEventKind.SIGNED_IN,
    "entry_sign_out": VisitorEventKind.SIGNED_OUT,
    "entry_blacklist_review": VisitorEventKind.WATCHLIST_REVIEW,
    "entry_blacklist_deny": VisitorEventKind.WATCHLIST_DENY,
}
WATCHLIST = frozenset({VisitorEventKind.WATCHLIST_REVIEW, VisitorEventKind.WATCHLIST_DENY})
STATE_FILE = "envoy-webhooks.json"


class EnvoyWebhookVisitorSystem(VisitorSystem):
    """Envoy Visitors webhooks (sign-in, sign-out, blocklist review/deny), verified and replay-safe."""

    kind = "envoy_webhooks"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        client_secret: SecretStr = Field(
            description='the Envoy app\'s client secret that signs each webhook; use { env = "NAME" } or { file = }'
        )
        host: str = Field(default="127.0.0.1", description="address to listen on (put TLS in front of it)")
        port: int = Field(default=8766, ge=0, le=65535, description="port to listen on; 0: any free port")
        path: str = Field(default="/webhooks/envoy", description="the URL path Envoy POSTs to")
        max_age_seconds: float = Field(
            default=300.0, gt=0, description="sign-ins/outs whose time is older than this are refused (replays)"
        )
        watchlist_max_age_seconds: float = Field(
            default=3600.0,
            gt=0,
            description="the same for blocklist review/deny, which carry the sign-in attempt's time: "
            "a person decides a deny later",
        )
        cameras: dict[str, str] = Field(
            default_factory=dict,
            description="Envoy visitor-entrance id, location id or location name -> the campusguard camera there",
        )
        max_body_bytes: int = Field(default=262144, ge=1024, description="larger bodies are refused (413)")

        @field_validator("path")
        @classmethod
        def _absolute_path(cls, path: str) -> str:
            if not path.startswith("/"):
                raise ValueError(f"path must start with '/', got {path!r}")
            return path

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, EnvoyWebhookVisitorSystem.Config)
        self.settings = config
        self._secret = config.client_secret.get_secret_value().encode()
        keep = max(config.max_age_seconds, config.watchlist_max_age_seconds) * 2 + 60
        self._guard = ReplayGuard(context.data_dir / STATE_FILE, keep)
        self._on_site: dict[str, Visitor] = {}
        self._runner: Any = None
        self._saver: asyncio.Task[None] | None = None
        self._dirty = asyncio.Event()
        self._stopping = False
        self.port: int | None = None  # the bound port, once started
        self.accepted = 0
        self.refused = 0

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        from aiohttp import web  # here, so that listing plugins stays instant

        if self._runner is not None:
            return
        extra = await asyncio.to_thread(self._guard.load)
        self._on_site = {}
        for item in extra.get("on_site", []):
            with contextlib.suppress(ValueError, TypeError):
                visitor = Visitor.model_validate(item)
                self._on_site[visitor.visitor_id] = visitor
        known = set(self.context.core.camera_ids())
        for key, camera in self.settings.cameras.items():
            if known and camera not in known:
                self.log.warning("cameras: %r maps to camera %r, which is not configured", key, camera)
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        app.router.add_post(self.settings.path, self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.settings.host}:{self.settings.port}"
            raise NotReady(f"cannot listen on {where}: {exc.strerror or exc}") from exc
        self._runner = runner
        addresses = runner.addresses
        self.port = int(addresses[0][1]) if addresses else self.settings.port
        self._stopping = False
        self._dirty = asyncio.Event()
        self._saver = asyncio.create_task(self._save_loop(), name=f"envoy-webhooks-{self.name}-state")
        self.log.info("receiving Envoy webhooks on http://%s:%s%s", self.settings.host, self.port, self.settings.path)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        saver, self._saver = self._saver, None
        if saver is not None:
            self._stopping = True
            self._dirty.set()  # one last write of what was accepted
            try:
                await asyncio.wait_for(saver, 5.0)
            except TimeoutError:
                self.log.error("state file %s not written within 5 s", self._guard.path)

    async def _save_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            on_site = [v.model_dump(mode="json") for v in self._on_site.values()]
            version, text = self._guard.snapshot({"on_site": on_site})
            try:
                await asyncio.to_thread(self._guard.write, version, text)
            except OSError as exc:
                self.log.error("cannot write %s: %s (replays after a restart are then not recognised)",
                               self._guard.path, exc)  # fmt: skip
            if self._stopping:
                return

    # -- VisitorSystem ---------------------------------------------------------------------------

    async def on_site(self) -> list[Visitor]:
        return sorted(self._on_site.values(), key=lambda v: v.signed_in_at)

    async def on_emergency(self, scenario: str, roster: list[Visitor], *, exercise: bool) -> str:
        drill = " (exercise)" if exercise else ""
        self.log.warning(
            "%s%s: %d visitor(s) on the roster, %d seen signed in through Envoy webhooks; Envoy has no public API "
            "to start an emergency or stop sign-ins, so nothing was sent to Envoy",
            scenario, drill, len(roster), len(self._on_site),
        )  # fmt: skip
        return (
            f"logged only: Envoy's emergency notifications have no public API, so nothing was sent to Envoy; "
            f"{len(self._on_site)} visitor(s) seen signed in through its webhooks, {len(roster)} on the roster{drill}"
        )

    # -- the webhook -----------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        from aiohttp import web

        try:
            body = await request.read()
            answer = self.receive(body, request.headers.get(SIGNATURE_HEADER))
        except Rejected as exc:
            self.refused += 1
            self.log.warning("Envoy webhook from %s refused (%d): %s", request.remote, exc.status, exc.reason)
            return web.json_response({"error": exc.reason}, status=exc.status)
        except web.HTTPException:
            raise  # e.g. 413 for a body over max_body_bytes
        return web.json_response(answer)

    def receive(self, body: bytes, signature: str | None) -> dict[str, Any]:
        """Check and process one webhook body; what to answer (2xx), or ``Rejected``. Never awaits."""
        verify_signature(self._secret, body, signature, header_name=SIGNATURE_HEADER)
        data = parse_json_object(body)
        event_name = field(data, "meta.event", str)
        kind = EVENTS.get(event_name)
        if kind is None:
            # Acknowledged, or Envoy retries it for ten minutes; it is simply not ours.
            return {"ignored": f"event {event_name!r} is not a visitor sign-in, sign-out or blocklist event"}
        field(data, "payload", dict)
        entry_id = str(field(data, "payload.id", (str, int)))
        job_id = field(data, "meta.job.id", (str, int), required=False)
        keys = [body_key(body), f"entry:{event_name}:{entry_id}"]
        if job_id is not None:
            keys.append(f"job:{job_id}")
        if self._guard.seen(keys):
            return {"duplicate": True, "entry": entry_id, "event": event_name}
        visitor, at_path, at = self._visitor(data, kind, entry_id)
        max_age = self.settings.watchlist_max_age_seconds if kind in WATCHLIST else self.settings.max_age_seconds
        check_age(at, max_age, at_path)
        camera_id, where = self._camera(data)
        event = VisitorEvent(
            id=f"envoy-{self.name}-{event_name}-{entry_id}",
            kind=kind,
            visitor=visitor,
            source=self.name,
            camera_id=camera_id,
            detail={"envoy_event": event_name, "entry_id": entry_id, "job_id": job_id, **where},
        )
        self._guard.remember(keys)
        if kind is VisitorEventKind.SIGNED_IN:
            self._on_site[visitor.visitor_id] = visitor
        elif kind in (VisitorEventKind.SIGNED_OUT, VisitorEventKind.WATCHLIST_DENY):
            self._on_site.pop(visitor.visitor_id, None)
        self._dirty.set()
        self.context.core.bus.publish(VISITOR_EVENTS, event)
        self.accepted += 1
        self.log.info("Envoy %s of entry %s accepted", event_name, entry_id)
        return {"accepted": True, "entry": entry_id, "event": event_name}

    def _visitor(self, data: dict[str, Any], kind: VisitorEventKind, entry_id: str) -> tuple[Visitor, str, datetime]:
        """The entry as a Visitor (no photo, no contact details), and the time its event is judged by."""
        name = field(data, "payload.attributes.full-name", str).strip()
        if not name:
            raise Rejected(400, "payload.attributes.full-name is empty")
        host = field(data, "payload.attributes.host", str, required=False)
        signed_in = parse_time(field(data, "payload.attributes.signed-in-at", (str, int, float)),
                               "payload.attributes.signed-in-at")  # fmt: skip
        out_path = "payload.attributes.signed-out-at"
        raw_out = field(data, out_path, (str, int, float), required=kind is VisitorEventKind.SIGNED_OUT)
        signed_out = parse_time(raw_out, out_path) if raw_out is not None else None
        if kind is not VisitorEventKind.SIGNED_OUT:
            signed_out = None  # only a sign-out ends a visit here
        location = _location_name(data)
        visitor = Visitor(
            visitor_id=entry_id,
            display_name=name,
            host=host or None,
            signed_in_at=signed_in.astimezone(UTC),
            signed_out_at=signed_out.astimezone(UTC) if signed_out is not None else None,
            location=location,
        )
        if signed_out is not None:
            return visitor, out_path, signed_out
        return visitor, "payload.attributes.signed-in-at", signed_in

    def _camera(self, data: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
        """The configured camera of the entry's entrance or location, and where it was (for ``detail``)."""
        entrance = _id(data, "payload.relationships.visitor-entrance.data.id")
        location_id = _id(data, "payload.relationships.location.data.id") or _id(data, "meta.location.id")
        location_name = _location_name(data)
        where = {"entrance_id": entrance, "location_id": location_id, "location": location_name}
        for key in (entrance, location_id, location_name):
            if key is not None and key in self.settings.cameras:
                return self.settings.cameras[key], where
        return None, where


def _get(data: dict[str, Any], path: str) -> Any:
    """The value at dotted ``path``, or None where any part is absent (optional parts of an entry)."""
    value: Any = data
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _id(data: dict[str, Any], path: str) -> str | None:
    value = _get(data, path)
    return str(value) if isinstance(value, str | int) and not isinstance(value, bool) and str(value) else None


def _location_name(data: dict[str, Any]) -> str | None:
    """The entry's ``location`` attribute when it has one, else the name of Envoy's meta location."""
    for path in ("payload.attributes.location", "meta.location.attributes.name"):
        value = _get(data, path)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None
