"""What the CAP dispatchers share: building this version's alert, and mapping HTTP answers to SDK errors."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from campusguard.sdk import AuthFailed, Dispatcher, Incident, NotReady

from .settings import CapSettings

if TYPE_CHECKING:
    from .alert import AlertRef


class CapDispatcher(Dispatcher):
    """Base of the dispatchers that send a CAP 1.2 alert per incident version (``Config`` is a CapSettings)."""

    async def render(self, incident: Incident) -> tuple[bytes, AlertRef]:
        """This version's CAP alert and its identity. lxml is imported here, not when plugins are listed."""
        from .alert import alert_ref, build_alert, read_snapshot

        settings = self.config
        assert isinstance(settings, CapSettings)
        snapshot = None
        if settings.snapshot != "none":
            snapshot = await asyncio.to_thread(read_snapshot, incident, self.context.core.data_dir)
        return build_alert(incident, settings, snapshot), alert_ref(incident, settings)


def check_http_status(what: str, status: int, body: bytes) -> None:
    """2xx passes; 401/403 is :class:`AuthFailed` (stop and report); anything else :class:`NotReady` (retry)."""
    if 200 <= status < 300:
        return
    excerpt = body[:200].decode("utf-8", "replace").strip()
    detail = f": {excerpt}" if excerpt else ""
    if status in (401, 403):
        raise AuthFailed(f"{what} refused our credentials (HTTP {status}){detail}")
    raise NotReady(f"{what} answered HTTP {status}{detail}; the delivery stays queued and is retried")


async def post_incident(
    client: Any, what: str, url: str, body: bytes, content_type: str, incident: Incident, target: str,
    token: str | None,
) -> Any:  # fmt: skip
    """POST one version of an incident with its idempotency key and drill marking; errors mapped."""
    import httpx

    headers = {
        "Content-Type": content_type,
        "Idempotency-Key": incident.delivery_key(target),
        "X-Campusguard-Exercise": "true" if incident.exercise else "false",
    }
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        response = await client.post(url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise NotReady(f"{what} unreachable: {type(exc).__name__}: {exc}") from exc
    check_http_status(what, response.status_code, response.content)
    return response
