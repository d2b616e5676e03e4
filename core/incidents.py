"""Human handling of incidents: verify, dismiss, acknowledge, resolve — each change audited.

Used by ``campusguard incidents``; works against the store while the core runs (SQLite WAL).
"""

from __future__ import annotations

from campusguard.sdk import Incident, IncidentStatus

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
    incident = await store.get_incident(incident_id)
    if incident is None:
        raise IncidentError(f"no incident {incident_id!r}")
    current = IncidentStatus(incident.status)
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(a for a, s in ACTIONS.items() if s in TRANSITIONS[current]) or "nothing (it is closed)"
        raise IncidentError(f"incident {incident_id} is {current}: cannot {action} it; allowed: {allowed}")
    incident.status = target
    incident.stamp(str(target))
    # One transaction: the new status and who set it are never apart.
    await store.record_incident(
        incident, (), actor=by, action=f"incident.{target}", detail={"from": str(current), "note": note}
    )
    return incident
