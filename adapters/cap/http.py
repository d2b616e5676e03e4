"""``cap_http``: POST each incident version as a CAP 1.2 alert to a URL."""

from __future__ import annotations

from typing import Any

from pydantic import AnyHttpUrl, Field, SecretStr, model_validator

from campusguard.sdk import Incident, NotReady

from .common import CapDispatcher, post_incident
from .settings import CapSettings


class CapHttpDispatcher(CapDispatcher):
    """A CAP 1.2 alert per incident version, POSTed to an HTTP(S) endpoint (an alerting hub, a CAP aggregator).

    2xx is delivered; 401/403 stops the dispatcher (credentials); anything else, a network error, or
    (with ``expect_ack``) an answer that is not a CAP ``Ack`` of our alert is retried from the outbox.
    """

    kind = "cap_http"

    class Config(CapSettings):
        url: AnyHttpUrl = Field(description="where the alerts are POSTed")
        token: SecretStr | None = Field(default=None, description='bearer token; use { env = "NAME" }')
        username: str | None = Field(default=None, description="HTTP basic auth user (with password)")
        password: SecretStr | None = Field(default=None, description="HTTP basic auth password")
        timeout: float = Field(default=5.0, gt=0, description="seconds per request")
        content_type: str = Field(default="application/xml; charset=utf-8", description="Content-Type of the POST")
        headers: dict[str, str] = Field(default_factory=dict, description="extra headers")
        expect_ack: bool = Field(
            default=False, description="the target answers with a CAP Ack of each alert: anything else is retried"
        )

        @model_validator(mode="after")
        def _auth(self) -> CapHttpDispatcher.Config:
            if self.token is not None and (self.username is not None or self.password is not None):
                raise ValueError("use either token (bearer) or username and password (basic auth), not both")
            if (self.username is None) != (self.password is None):
                raise ValueError("basic auth needs both username and password")
            return self

    async def start(self) -> None:
        import httpx  # imported here so that listing plugins stays fast

        config = self.config
        assert isinstance(config, CapHttpDispatcher.Config)
        auth = None
        if config.username is not None and config.password is not None:
            auth = httpx.BasicAuth(config.username, config.password.get_secret_value())
        self._client: Any = httpx.AsyncClient(timeout=config.timeout, headers=config.headers, auth=auth)

    async def stop(self) -> None:
        client = getattr(self, "_client", None)
        if client is not None:
            self._client = None
            await client.aclose()

    async def dispatch(self, incident: Incident) -> None:

        config = self.config
        assert isinstance(config, CapHttpDispatcher.Config)
        if getattr(self, "_client", None) is None:
            raise NotReady(f"CAP target {config.url}: the dispatcher is not started")
        body, ref = await self.render(incident)
        what = f"CAP target {config.url}"
        token = config.token.get_secret_value() if config.token is not None else None
        response = await post_incident(
            self._client, what, str(config.url), body, config.content_type, incident, self.name, token
        )
        if config.expect_ack:
            from .alert import AckError, check_ack

            try:
                check_ack(response.content, ref)
            except AckError as exc:
                raise NotReady(
                    f"{what} answered HTTP {response.status_code} but not with a CAP acknowledgement of alert "
                    f"{ref.identifier}: {exc}; the alert stays queued and is sent again"
                ) from None
        self.log.info("CAP %s %s delivered to %s", ref.identifier, incident.change, config.url)
