"""``partner_911``: share incident data with a 911 data partner (RapidSOS-like). It never calls 911.

911 data partners require that a call to 911 is placed by a person, with two-way voice: automated
systems may share data that the call taker then sees, but may not start the call. So this dispatcher
only ever POSTs data (``mode = "share"``, the only mode); any option that would have it place or request
a call is refused when the config is read, with this reason. A person calls 911; campusguard makes sure
the call taker already has the location, what was seen and the snapshot's checksum.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr, model_validator

from campusguard.sdk import Dispatcher, Incident, NotReady

from .common import post_incident
from .settings import AreaSettings

SCHEMA = "campusguard.partner-share/1"
NEVER_CALLS = (
    "campusguard never places or requests a 911 call: 911 partners (RapidSOS among them) require that a "
    "person places the call, with two-way voice; automatic flows may only share data. Use mode = 'share' "
    "(the default) and have staff call 911."
)
# Options a partner API might offer that would start a call without a person: refused with NEVER_CALLS.
_CALL_OPTIONS = ("auto_call", "call", "place_call", "initiate_call", "call_911", "request_call", "dial", "call_number",
                 "trigger_call", "call_flow")  # fmt: skip


class Partner911Dispatcher(Dispatcher):
    """Shares incident data with a 911 data partner over HTTPS (JSON). Never places or requests a call.

    2xx is delivered; 401/403 stops the dispatcher; anything else is retried from the outbox.
    """

    kind = "partner_911"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        url: AnyHttpUrl = Field(description="the partner's data-sharing endpoint")
        token: SecretStr | None = Field(default=None, description='bearer token; use { env = "NAME" }')
        mode: Literal["share"] = Field(default="share", description="share: data only (the only mode; see docs)")
        timeout: float = Field(default=5.0, gt=0, description="seconds per request")
        headers: dict[str, str] = Field(default_factory=dict, description="extra headers")
        site: str | None = Field(default=None, description="the school's name, as the call taker should see it")
        callback: str | None = Field(default=None, description="a number the call taker can reach staff on")
        area: AreaSettings = Field(
            default_factory=AreaSettings, description="where the school is: latitude, longitude, radius_km, civic"
        )

        @model_validator(mode="before")
        @classmethod
        def _never_calls(cls, data: Any) -> Any:
            if isinstance(data, dict):
                mode = data.get("mode", "share")
                if mode != "share":
                    raise ValueError(f"mode = {mode!r} is refused: {NEVER_CALLS}")
                asked = [key for key in _CALL_OPTIONS if key in data]
                if asked:
                    raise ValueError(f"{', '.join(asked)}: refused: {NEVER_CALLS}")
            return data

    async def start(self) -> None:
        import httpx

        config = self.config
        assert isinstance(config, Partner911Dispatcher.Config)
        self._client: Any = httpx.AsyncClient(timeout=config.timeout, headers=config.headers)

    async def stop(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            self._client = None
            await client.aclose()

    def payload(self, incident: Incident) -> dict[str, Any]:
        """What is shared: the incident, where it is, and that no call was or will be placed by us."""
        config = self.config
        assert isinstance(config, Partner911Dispatcher.Config)
        location = incident.location
        latitude = location.latitude if location and location.latitude is not None else config.area.latitude
        longitude = location.longitude if location and location.longitude is not None else config.area.longitude
        raised = incident.stages.get("raised")
        return {
            "schema": SCHEMA,
            "call_requested": False,  # always: a person calls 911
            "exercise": incident.exercise,
            "idempotency_key": incident.delivery_key(self.name),
            "site": config.site,
            "callback": config.callback,
            "incident": {
                "id": incident.id,
                "revision": incident.revision,
                "change": str(incident.change),
                "kind": str(incident.kind),
                "severity": str(incident.severity),
                "status": str(incident.status),
                "title": incident.title,
                "confidence": incident.confidence,
                "camera": incident.camera_id,
                "zone": incident.zone,
                "raised_at": (raised.wall if raised else incident.created_at).isoformat(),
                "snapshot_sha256": incident.evidence.snapshot_sha256,
            },
            "location": {
                "latitude": latitude,
                "longitude": longitude,
                "radius_m": config.area.radius_km * 1000 if latitude is not None else None,
                "description": config.area.description,
                "building": location.building if location else None,
                "floor": location.floor if location else None,
                "room": location.room if location else None,
                "civic": dict(config.area.civic),
            },
        }

    async def dispatch(self, incident: Incident) -> None:

        config = self.config
        assert isinstance(config, Partner911Dispatcher.Config)
        if getattr(self, "_client", None) is None:
            raise NotReady(f"911 partner {config.url}: the dispatcher is not started")
        body = json.dumps(self.payload(incident), ensure_ascii=False, separators=(",", ":")).encode()
        what = f"911 partner {config.url}"
        token = config.token.get_secret_value() if config.token is not None else None
        await post_incident(self._client, what, str(config.url), body, "application/json", incident, self.name, token)
        self.log.info("incident %s (%s) shared with %s; no call placed", incident.id, incident.change, config.url)
