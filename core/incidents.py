"""Human handling of incidents: verify, dismiss, acknowledge, resolve — each change audited.

Used by ``campusguard incidents``; works against the store while the core runs (SQLite WAL).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from campusguard.sdk import Incident, IncidentChange, IncidentStatus

from .rules.jobs import status_job
from .store import SQLiteStore

S = IncidentStatus
# Which status each may move to. Dismissed and resolved are final.
TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    S.NEW: frozenset({S.VERIFYING, S.CONFIRMED, S.DISMISSED, S.ACKNOWLEDGED, S.RESOLVED}),
    S.VERIFYING: frozenset({S.CONFIRMED, S.DISMISSED}),
    S.CONFIRMED: frozenset({S.ACKNOWLEDGED, S.RESOLVED}),
    S.ACKNOWLEDGED: frozenset({S.RESOLVED}),
    S.DISMISSED: frozenset(),
    S.RESOLVED: frozenset(),
}

ACTIONS: dict[str, IncidentStatus] = {
    "verify": S.CONFIRMED,
    "dismiss": S.DISMISSED,
    "ack": S.ACKNOWLEDGED,
    "resolve": S.RESOLVED,
}


class IncidentError(Exception):
    """An incident that does not exist, or a change its status does not allow."""


async def change_status(store: SQLiteStore, incident_id: str, action: str, *, by: str, note: str = "") -> Incident:
    """Apply ``action`` (verify, dismiss, ack, resolve) as person ``by``; audited with the note."""
    if not by.strip():
        raise IncidentError("say who you are: --by NAME (every change is audited)")
    target = ACTIONS[action]
    refused: list[str] = []
    detail: dict[str, str] = {"note": note}  # filled in with the status it had, inside the transaction

    def apply(incident: Incident) -> bool:
        current = IncidentStatus(incident.status)
        if target not in TRANSITIONS[current]:
            allowed = ", ".join(a for a, s in ACTIONS.items() if s in TRANSITIONS[current]) or "nothing (it is closed)"
            refused.append(f"incident {incident_id} is {current}: cannot {action} it; allowed: {allowed}")
            return False
        detail["from"] = str(current)
        incident.advance(IncidentChange(str(target)), target)
        return True

    # One transaction: the new status, who set it, and the core's job to tell everyone are never apart.
    # The read happens inside it too, so a concurrent change (the core escalating) is never undone.
    changed = await store.change_incident(
        incident_id, apply, actor=by, action=f"incident.{target}",
        detail=detail, jobs=lambda i: [status_job(i, target, time.time())],
    )  # fmt: skip
    if changed is None:
        raise IncidentError(refused[0] if refused else f"no incident {incident_id!r}")
    return changed


def _ms(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds() * 1000, 1)


async def describe(store: SQLiteStore, incident: Incident) -> dict[str, Any]:
    """The incident with its deliveries per target and version, and the latency of each stage.

    Latencies are from the frame's capture (or detection, without one) to detection, to the
    incident being raised, and to each delivery, in milliseconds.
    """
    shown: dict[str, Any] = incident.model_dump(mode="json")
    start = incident.stages.get("captured") or incident.stages.get("detected")
    deliveries = await store.deliveries_of(incident.id)
    latency: dict[str, float] = {}
    if start is not None:
        for stage in ("detected", "raised"):
            if stage in incident.stages:
                latency[stage] = _ms(start.wall, incident.stages[stage].wall)
        for delivery in deliveries:
            if delivery["delivered_at"] and delivery["revision"] == 0:
                latency[f"delivered:{delivery['target']}"] = _ms(
                    start.wall, datetime.fromisoformat(delivery["delivered_at"])
                )
    shown["deliveries"] = deliveries
    shown["latency_ms"] = latency
    return shown


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def stats(store: SQLiteStore, limit: int = 500) -> dict[str, Any]:
    """How the last ``limit`` incidents went: counts by kind and status, and latency per stage (ms)."""
    incidents = await store.list_incidents(limit)
    by_stage: dict[str, list[float]] = {}
    kinds: dict[str, int] = {}
    statuses: dict[str, int] = {}
    for incident in incidents:
        kinds[str(incident.kind)] = kinds.get(str(incident.kind), 0) + 1
        statuses[str(incident.status)] = statuses.get(str(incident.status), 0) + 1
        for stage, ms in (await describe(store, incident))["latency_ms"].items():
            by_stage.setdefault(stage, []).append(ms)
    latency = {
        stage: {"p50": _percentile(v, 0.5), "p99": _percentile(v, 0.99), "max": max(v), "n": len(v)}
        for stage, v in sorted(by_stage.items())
    }
    return {"incidents": len(incidents), "kinds": kinds, "statuses": statuses, "latency_ms": latency}
