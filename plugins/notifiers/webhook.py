"""POST each incident as JSON to a URL, signed, with an idempotency key the receiver dedups on."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, JsonValue, SecretStr, field_validator

from campusguard.sdk import AuthFailed, Incident, Notifier, NotReady

from .message import check_tree, render_tree


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + HMAC-SHA256 of ``timestamp.body``: the timestamp is signed against replay."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier(Notifier):
    """Headers: ``Idempotency-Key``, ``X-Campusguard-Timestamp``, ``X-Campusguard-Signature``,
    ``X-Campusguard-Exercise``. A 2xx answer is delivered; 401/403 stops the notifier (credentials);
    anything else is retried from the outbox. The body is the incident's JSON, or ``template``
    rendered (for Slack, Teams and other receivers that expect their own shape)."""

    kind = "webhook"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        url: AnyHttpUrl
        secret: SecretStr | None = Field(default=None, description='HMAC key; use { env = "NAME" }')
        timeout: float = Field(default=5.0, gt=0, description="seconds per request")
        headers: dict[str, str] = Field(default_factory=dict)
        template: dict[str, JsonValue] | None = Field(
            default=None,
            description="JSON body to send instead of the incident; its strings are templates (docs/notifiers.md)",
        )

        @field_validator("template")
        @classmethod
        def _placeholders(cls, value: dict[str, JsonValue] | None) -> dict[str, JsonValue] | None:
            if value is not None:
                check_tree(value)  # an unknown field is a config error, not a failed alert
            return value

    async def start(self) -> None:
        import httpx  # imported here so that listing plugins stays fast

        assert isinstance(self.config, WebhookNotifier.Config)
        self._client: Any = httpx.AsyncClient(timeout=self.config.timeout, headers=self.config.headers)

    async def stop(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            self._client = None
            await client.aclose()

    async def notify(self, incident: Incident) -> None:
        import httpx

        assert isinstance(self.config, WebhookNotifier.Config)
        if self.config.template is None:
            body = incident.model_dump_json().encode()
        else:
            rendered = render_tree(self.config.template, incident, self.name)
            body = json.dumps(rendered, ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": incident.delivery_key(self.name),
            "X-Campusguard-Timestamp": timestamp,
            "X-Campusguard-Exercise": "true" if incident.exercise else "false",
        }
        if self.config.secret is not None:
            headers["X-Campusguard-Signature"] = sign(self.config.secret.get_secret_value(), timestamp, body)
        try:
            response = await self._client.post(str(self.config.url), content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotReady(f"webhook {self.config.url} unreachable: {type(exc).__name__}: {exc}") from exc
        if response.status_code in (401, 403):
            raise AuthFailed(f"webhook {self.config.url} answered {response.status_code}")
        if response.status_code >= 300:
            raise NotReady(f"webhook {self.config.url} answered {response.status_code}")
