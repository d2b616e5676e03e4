"""Turns observations into incidents: match, confirm, dedupe, cool down, raise.

Time is the observation's own (its frame's capture time, else its detection time), so that
windows mean the same live and in ``campusguard replay``, which runs on the video's clock.
Observations arrive one at a time (one bus subscription), so the state here needs no locks.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from campusguard.sdk import (
    OBSERVATIONS,
    Incident,
    IncidentChange,
    IncidentStatus,
    Observation,
    Overflow,
    Stage,
    Subscription,
)
from campusguard.sdk.bus import Bus
from campusguard.sdk.models import keep_files

from ..store import Job, SQLiteStore
from .jobs import CLOSED, action_jobs, raise_jobs
from .lifecycle import notify_targets, union
from .model import Rule

log = logging.getLogger("campusguard.rules")

Key = tuple[str, str, str | None]  # rule, camera, zone


class RulesCore(Protocol):
    """What the engine needs of the core."""

    store: SQLiteStore

    @property
    def bus(self) -> Bus: ...

    async def raise_incident(
        self, incident: Incident, targets: Sequence[str] | None = None, *, jobs: Sequence[Job] = ()
    ) -> Incident: ...

    def notifier_names(self) -> list[str]: ...

    def wake_delivery(self, targets: Sequence[str]) -> None: ...

    def publish_incident(self, incident: Incident) -> None: ...


@dataclass
class _Open:
    """An incident that repeats of the same thing update instead of raising a new one."""

    incident: Incident
    last_seen: float
    track_ids: set[int]


@dataclass
class _KeyState:
    recent: deque[tuple[float, bool]] = field(default_factory=deque)  # (time, passed min_confidence)
    open: list[_Open] = field(default_factory=list)
    last_raised: float | None = None


def _event_time(observation: Observation) -> datetime:
    return (observation.captured or observation.detected).wall


class RuleEngine:
    def __init__(self, core: RulesCore, rules: list[Rule]) -> None:
        self.core = core
        self.rules = rules
        self._state: dict[Key, _KeyState] = {}
        self._subscription: Subscription | None = None

    async def restore(self, limit: int = 500) -> None:
        """Pick up the open incidents of the rules from the store, so dedupe and cooldown survive a restart."""
        rules = {rule.name: rule for rule in self.rules}
        for incident in await self.core.store.list_incidents(limit):
            rule = rules.get(incident.rule or "")
            if rule is None or incident.camera_id is None:
                continue
            stamps = [incident.stages[k] for k in ("updated", "raised") if k in incident.stages]
            if not stamps:
                continue
            seen = max(s.wall for s in stamps).timestamp()
            raised = incident.stages["raised"].wall.timestamp() if "raised" in incident.stages else seen
            state = self._state.setdefault((rule.name, incident.camera_id, incident.zone), _KeyState())
            state.last_raised = max(state.last_raised or raised, raised)
            if IncidentStatus(incident.status) not in CLOSED and rule.dedupe_seconds > 0:
                state.open.append(_Open(incident, seen, set(incident.evidence.track_ids)))

    def start(self) -> None:
        # Never drop: an observation lost here is an incident nobody hears about.
        self._subscription = self.core.bus.subscribe(
            OBSERVATIONS, self.on_observation, name="rules", overflow=Overflow.NEVER_DROP
        )

    async def drain(self) -> None:
        """Wait until every observation published so far is handled (replay, tests)."""
        drain = getattr(self._subscription, "drain", None)
        if drain is not None:
            await drain()

    async def stop(self) -> None:
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def on_observation(self, observation: Observation) -> None:
        for rule in self.rules:
            await self._apply(rule, observation)

    def _matches(self, rule: Rule, observation: Observation, at: datetime) -> bool:
        when = rule.when
        return (
            (not when.kinds or observation.kind in when.kinds)
            and (not when.cameras or observation.camera_id in when.cameras)
            and (not when.zones or observation.zone in when.zones)
            and (when.schedule is None or when.schedule.active(at))
        )

    def _confirmed(self, rule: Rule, state: _KeyState, now: float, passed: bool) -> bool:
        confirm = rule.when.confirm
        if confirm is None:
            return passed
        state.recent.append((now, passed))
        while len(state.recent) > confirm.n:
            state.recent.popleft()
        if confirm.window is not None:
            while state.recent and state.recent[0][0] < now - confirm.window:
                state.recent.popleft()
        return passed and sum(1 for _, hit in state.recent if hit) >= confirm.k

    async def _apply(self, rule: Rule, observation: Observation) -> None:
        at = _event_time(observation)
        if not self._matches(rule, observation, at):
            return
        now = at.timestamp()
        state = self._state.setdefault((rule.name, observation.camera_id, observation.zone), _KeyState())
        if not self._confirmed(rule, state, now, observation.confidence >= rule.when.min_confidence):
            return
        state.open = [o for o in state.open if now - o.last_seen <= rule.dedupe_seconds]
        tracks = set(observation.track_ids)
        for existing in list(state.open):
            # Without track ids on either side, one camera+zone is one situation.
            if not tracks or not existing.track_ids or tracks & existing.track_ids:
                if await self._update(rule, existing, observation, now, tracks):
                    return
                state.open.remove(existing)  # a person closed it: what is seen now is a new incident
        if state.last_raised is not None and now - state.last_raised < rule.cooldown_seconds:
            log.debug(
                "rule %r: %s on %s within cooldown, not raised", rule.name, observation.kind, observation.camera_id
            )
            return
        incident = self._incident(rule, observation)
        if incident.status is IncidentStatus.CONFIRMED:
            targets = rule.notify or None
        else:  # a person must verify it first: only the verifiers hear of it now
            targets = rule.verifiers or rule.notify or None
        await self.core.raise_incident(incident, targets, jobs=raise_jobs(rule, incident, time.time()))
        state.last_raised = now
        if rule.dedupe_seconds > 0:
            state.open.append(_Open(incident, now, tracks))
        log.info("rule %r raised %s incident %s: %s", rule.name, incident.kind, incident.id, incident.title)

    async def _update(
        self, rule: Rule, existing: _Open, observation: Observation, now: float, tracks: set[int]
    ) -> bool:
        """Fold a repeat into the open incident; False when it was closed meanwhile."""

        def refresh(stored: Incident) -> bool:
            if IncidentStatus(stored.status) in CLOSED:
                return False
            stored.confidence = observation.confidence
            stored.evidence = keep_files(stored.evidence, observation.evidence)  # the clip and snapshot stay
            stored.change = IncidentChange.UPDATED
            stored.stamp("updated")
            return True

        store = self.core.store
        incident = await store.change_incident(
            existing.incident.id, refresh, actor=f"rule:{rule.name}", action="incident.updated"
        )
        if incident is None:
            return False
        existing.incident = incident
        existing.last_seen = now
        existing.track_ids |= tracks
        log.info("rule %r updated %s incident %s (confidence %.2f)", rule.name, incident.kind, incident.id,
                 incident.confidence)  # fmt: skip
        if incident.status is IncidentStatus.VERIFYING and rule.confirms_at_once(incident.confidence):
            await self._auto_confirm(rule, existing)
        self.core.publish_incident(existing.incident)
        return True

    async def _auto_confirm(self, rule: Rule, existing: _Open) -> None:
        """A repeat raised the confidence past ``auto_confirm``: confirmed without waiting for a person."""

        def confirm(stored: Incident) -> bool:
            if stored.status is not IncidentStatus.VERIFYING:
                return False  # a person decided first
            stored.advance(IncidentChange.CONFIRMED, IncidentStatus.CONFIRMED)
            return True

        notify = notify_targets(rule, self.core)
        confirmed = await self.core.store.change_incident(
            existing.incident.id, confirm, targets=lambda _i, prior: union(prior, notify), actor=f"rule:{rule.name}",
            action="incident.confirmed", detail={"auto": True, "confidence": existing.incident.confidence},
            jobs=lambda i: action_jobs(rule, i, time.time()),
        )  # fmt: skip
        if confirmed is not None:
            existing.incident = confirmed
            log.info("rule %r auto-confirmed incident %s at confidence %.2f", rule.name, confirmed.id,
                     confirmed.confidence)  # fmt: skip
            self.core.wake_delivery(union(await self.core.store.targets_of(confirmed.id)))

    def _incident(self, rule: Rule, observation: Observation) -> Incident:
        template = rule.incident
        kind = template.incident_kind(observation.kind)
        title = template.render_title(
            kind=str(kind),
            camera_id=observation.camera_id,
            zone=observation.zone or "",
            confidence=observation.confidence,
            rule=rule.name,
        )
        # Frame-to-incident latency is measured from these two stamps.
        stages = {str(Stage.DETECTED): observation.detected}
        if observation.captured is not None:
            stages[str(Stage.CAPTURED)] = observation.captured
        evidence = observation.evidence.model_copy(deep=True)
        if evidence.camera_id is None:
            evidence.camera_id = observation.camera_id
        if not evidence.track_ids:
            evidence.track_ids = list(observation.track_ids)
        confirmed = rule.confirms_at_once(observation.confidence)
        return Incident(
            status=IncidentStatus.CONFIRMED if confirmed else IncidentStatus.VERIFYING,
            rule=rule.name,
            kind=kind,
            severity=template.severity,
            title=title,
            camera_id=observation.camera_id,
            zone=observation.zone,
            confidence=observation.confidence,
            evidence=evidence,
            exercise=rule.exercise,
            source=f"rule:{rule.name}",
            stages=stages,
        )
