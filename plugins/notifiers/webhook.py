"""POST each incident as JSON to a URL, signed, with an idempotency key the receiver dedups on."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, SecretStr

from campusguard.sdk import AuthFailed, Incident, Notifier, NotReady


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=`` + HMAC-SHA256 of ``timestamp.body``: the timestamp is signed against replay."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class WebhookNotifier(Notifier):
    """Headers: ``Idempotency-Key``, ``X-Campusguard-Timestamp``, ``X-Campusguard-Signature``,
    ``X-Campusguard-Exercise``. A 2xx answer is delivered; 401/403 stops the notifier (credentials);
    anything else is retried from the outbox."""

    kind = "webhook"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        url: AnyHttpUrl
        secret: SecretStr | None = Field(default=None, description='HMAC key; use { env = "NAME" }')
        timeout: float = Field(default=5.0, gt=0, description="seconds per request")
        headers: dict[str, str] = Field(default_factory=dict)

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
        body = incident.model_dump_json().encode()
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
