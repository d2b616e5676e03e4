"""Runs the incident lifecycle's jobs: escalations, delayed actions, reactions to people's decisions.

The runner polls the store as well as being woken, because the CLI (another process) schedules
jobs too: a person who verifies an incident while the core runs sees its actions start within
``poll`` seconds; one who does it while the core is down sees them start when it comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Protocol

from campusguard.sdk import Incident, IncidentChange, IncidentStatus, cancel_and_wait

from ..backoff import backoff_delay
from ..store import DueJob, Job, SQLiteStore
from . import jobs as J
from .actions import ActionError, ActionRunner
from .model import Action, Rule

log = logging.getLogger("campusguard.lifecycle")

MAX_ATTEMPTS = 8  # then the job is marked failed and audited; a person must look


class LifecycleCore(Protocol):
    store: SQLiteStore

    def notifier_names(self) -> list[str]: ...

    def wake_delivery(self, targets: Sequence[str]) -> None: ...

    def publish_incident(self, incident: Incident) -> None: ...


def notify_targets(rule: Rule | None, core: LifecycleCore) -> list[str]:
    """Who hears of a confirmed incident: the rule's ``notify``, or every notifier."""
    return list(rule.notify) if rule is not None and rule.notify else core.notifier_names()


def union(*groups: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(t for group in groups for t in group))


class Lifecycle:
    def __init__(self, core: LifecycleCore, rules: Sequence[Rule], actions: ActionRunner, poll: float = 0.25):
        self.core = core
        self.rules = {rule.name: rule for rule in rules}
        self.actions = actions
        self.poll = poll
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def store(self) -> SQLiteStore:
        return self.core.store

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lifecycle")

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                for due in await self.store.due_jobs(time.time()):
                    await self._attempt(due)
                next_due = await self.store.next_job_due()
            except Exception:
                log.exception("lifecycle: reading jobs failed")
                next_due = None
            wait = self.poll if next_due is None else min(self.poll, max(0.0, next_due - time.time()))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):  # not wait_for: a stop's cancel must get through
                    await self._wakeup.wait()
            self._wakeup.clear()

    async def _attempt(self, due: DueJob) -> None:
        job = due.job
        try:
            await self._handle(due)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = str(exc) if isinstance(exc, ActionError) else repr(exc)
            if due.attempts + 1 >= MAX_ATTEMPTS:
                log.error("lifecycle: %s %s failed for good: %s", job.kind, job.key, reason)
                await self.store.finish_job(due.seq, failed=reason)
                await self.store.audit(
                    "core", f"job.failed.{job.kind}", job.incident_id, {**job.payload, "error": reason}
                )
                return
            delay = backoff_delay(due.attempts + 1, 0.5, 30.0)
            log.warning("lifecycle: %s %s failed (%s); retry in %.1fs", job.kind, job.key, reason, delay)
            await self.store.retry_job(due.seq, reason, time.time() + delay)
            return
        await self.store.finish_job(due.seq)

    async def _handle(self, due: DueJob) -> None:
        job = due.job
        if job.kind == J.ESCALATE:
            await self._escalate(due)
        elif job.kind == J.ACTION:
            await self._action(due)
        elif job.kind == J.STATUS_CHANGED:
            await self._status_changed(due)
        else:
            raise ValueError(f"unknown job kind {job.kind!r}")

    async def _deliver(self, incident: Incident, targets: Sequence[str]) -> None:
        self.core.wake_delivery(targets)
        self.core.publish_incident(incident)

    async def _escalate(self, due: DueJob) -> None:
        payload = due.job.payload
        rule = self.rules.get(payload["rule"])
        if rule is None or payload["step"] >= len(rule.escalation):
            log.warning("lifecycle: rule %r or its escalation step is gone; %s skipped", payload["rule"], due.job.key)
            return
        step = rule.escalation[payload["step"]]
        round_ = int(payload["round"])

        def escalate(incident: Incident) -> bool:
            if IncidentStatus(incident.status) not in J.UNACKNOWLEDGED:
                return False  # someone took it on (or closed it): escalation ends here
            incident.advance(IncidentChange.ESCALATED, stage=f"escalated:{payload['step']}:{round_}")
            return True

        def repeat(incident: Incident) -> list[Job]:
            if payload["last"] and rule.escalation_repeat > 0:
                return [J.escalation_job(rule, incident, payload["raised_at"], payload["step"], round_ + 1)]
            return []

        changed = await self.store.change_incident(
            due.job.incident_id, escalate, targets=lambda _i, _prior: step.notify, actor=f"rule:{rule.name}",
            action="incident.escalated",
            detail={"step": payload["step"], "round": round_, "notify": step.notify, "after": step.after},
            jobs=repeat,
        )  # fmt: skip
        if changed is not None:
            log.warning(
                "incident %s not acknowledged after %gs: escalated to %s",
                changed.id,
                step.after,
                ", ".join(step.notify),
            )
            await self._deliver(changed, step.notify)

    async def _action(self, due: DueJob) -> None:
        payload = due.job.payload
        incident = await self.store.get_incident(due.job.incident_id)
        if incident is None:
            raise ValueError(f"incident {due.job.incident_id} is not in the store")
        if IncidentStatus(incident.status) is IncidentStatus.DISMISSED:
            log.info("incident %s was dismissed: action %s not run", incident.id, due.job.key)
            return
        action = Action.model_validate(payload["action"])
        result = await self.actions.run(action, incident, rule=payload["rule"])
        detail = {**action.model_dump(mode="json"), "result": result}
        await self.store.audit(f"rule:{payload['rule']}", f"action.{action.do}", incident.id, detail)

    async def _status_changed(self, due: DueJob) -> None:
        """A person changed the status (the CLI did the change and its audit): tell who needs to know."""
        status = IncidentStatus(due.job.payload["status"])
        incident = await self.store.get_incident(due.job.incident_id)
        if incident is None:
            raise ValueError(f"incident {due.job.incident_id} is not in the store")
        rule = self.rules.get(incident.rule) if incident.rule else None
        prior = await self.store.targets_of(incident.id)
        targets = union(prior, notify_targets(rule, self.core)) if status is IncidentStatus.CONFIRMED else prior
        await self.store.enqueue_deliveries(incident, targets)
        if status is IncidentStatus.CONFIRMED and rule is not None:
            await self.store.schedule_jobs(J.action_jobs(rule, incident, time.time()))
            self.wake()
        await self._deliver(incident, targets)
