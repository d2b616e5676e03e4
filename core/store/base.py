"""The store's interface, so that SQLite (embedded) can be swapped for a district-wide backend."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from campusguard.sdk import Incident


@dataclass(frozen=True)
class OutboxEntry:
    """One pending delivery of an incident to one target."""

    seq: int
    idempotency_key: str
    target: str
    incident_id: str
    payload: str
    attempts: int
    next_attempt_at: float


@dataclass(frozen=True)
class Job:
    """Work the core must do later for an incident; ``key`` makes scheduling it twice a no-op."""

    key: str
    incident_id: str
    kind: str
    due_at: float
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DueJob:
    seq: int
    job: Job
    attempts: int


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    action: str
    subject: str
    detail: dict[str, Any]


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def record_incident(self, incident: Incident, targets: Sequence[str]) -> None:
        """Write the incident, its pending deliveries and an audit entry in one transaction."""
        ...

    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def list_incidents(self, limit: int = 100) -> list[Incident]: ...

    async def next_delivery(self, target: str) -> OutboxEntry | None:
        """The oldest pending delivery to ``target`` (deliveries go out in order per target)."""
        ...

    async def mark_delivered(self, seq: int) -> None: ...

    async def mark_retry(self, seq: int, error: str, next_attempt_at: float) -> None: ...

    async def pending_targets(self) -> list[str]: ...

    async def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> None: ...

    async def audit_entries(self, limit: int = 1000) -> list[AuditEntry]: ...
