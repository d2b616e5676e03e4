"""The durable jobs of the incident lifecycle, and which of them an incident needs when.

Jobs live in the store with the incident they belong to, written in the same transaction as the
change that made them necessary, so a restart (or ``kill -9``) loses no escalation or delayed action.
Keys make scheduling idempotent: the same step of the same incident is scheduled at most once.
"""

from __future__ import annotations

from campusguard.sdk import Incident, IncidentStatus

from ..store import Job
from .model import Rule

STATUS_CHANGED = "status_changed"  # a person changed the status (the CLI writes this job)
ACTION = "action"  # run one of the rule's actions
ESCALATE = "escalate"  # nobody acknowledged in time: tell the next group

S = IncidentStatus
# While an incident is in one of these, nobody has taken it on: escalation goes on.
UNACKNOWLEDGED = frozenset({S.NEW, S.VERIFYING, S.CONFIRMED})
CLOSED = frozenset({S.DISMISSED, S.RESOLVED})


def action_jobs(rule: Rule, incident: Incident, confirmed_at: float) -> list[Job]:
    return [
        Job(
            key=f"{incident.id}:action:{index}",
            incident_id=incident.id,
            kind=ACTION,
            due_at=confirmed_at + action.delay,
            payload={"rule": rule.name, "index": index, "action": action.model_dump(mode="json")},
        )
        for index, action in enumerate(rule.actions)
    ]


def escalation_job(rule: Rule, incident: Incident, raised_at: float, step: int, round_: int = 0) -> Job:
    """Step ``step`` of the rule's escalation; rounds past 0 repeat the last step."""
    last = len(rule.escalation) - 1
    due = raised_at + rule.escalation[step].after + round_ * rule.escalation_repeat
    return Job(
        key=f"{incident.id}:escalate:{step}:{round_}",
        incident_id=incident.id,
        kind=ESCALATE,
        due_at=due,
        payload={"rule": rule.name, "step": step, "round": round_, "last": step == last, "raised_at": raised_at},
    )


def raise_jobs(rule: Rule, incident: Incident, raised_at: float) -> list[Job]:
    """What a newly raised incident needs: its escalation, and its actions if already confirmed."""
    jobs = [escalation_job(rule, incident, raised_at, step) for step in range(len(rule.escalation))]
    if incident.status is S.CONFIRMED:
        jobs += action_jobs(rule, incident, raised_at)
    return jobs


def status_job(incident: Incident, status: IncidentStatus, at: float) -> Job:
    """The core's reaction to a person's status change: tell who heard of it, run actions on confirm."""
    return Job(
        key=f"{incident.id}:status:{incident.revision}",
        incident_id=incident.id,
        kind=STATUS_CHANGED,
        due_at=at,
        payload={"status": str(status), "revision": incident.revision},
    )
