"""The on-site visitor roster: kept in the store from ``VISITOR_EVENTS``, announced on a lockdown.

- Sign-ins and sign-outs from any visitor system are upserted into the ``visitors`` table, so the
  roster survives restarts. Nothing is ever dropped (a never-drop subscription).
- A watch-list review or deny becomes a ``visitor_watchlist`` observation (confidence 1.0, the
  entrance's camera, the visitor's opaque id; never a face, never a photo): the rules turn it into
  an incident and may point cameras at the entrance (``ptz_preset``).
- When a lockdown or evacuation starts (the door gate's ``on_scenario``), :meth:`VisitorRoster.announce`
  raises one info incident, kind ``visitor_roster``, whose ``details`` list everyone on site, to every
  notifier, and tells each running visitor system (``on_emergency``), auditing what each said. The
  door commands never wait for any of this.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Coroutine, Sequence
from typing import Any, Protocol

from campusguard.sdk import (
    OBSERVATIONS,
    VISITOR_EVENTS,
    Incident,
    Observation,
    Overflow,
    Severity,
    Subscription,
    Visitor,
    VisitorEvent,
    VisitorEventKind,
    VisitorSystem,
)
from campusguard.sdk.bus import Bus

from ..config import ComponentSpec
from ..doors.model import ScenarioKind
from ..store import SQLiteStore
from .store import RosterEntry, has_visits, on_site, record_visit

log = logging.getLogger("campusguard.visitors")

ROSTER_KIND = "visitor_roster"
WATCHLIST_KIND = "visitor_watchlist"
ACTOR = "core:visitors"


class RosterCore(Protocol):
    """What the roster needs of the core."""

    store: SQLiteStore
    specs: list[ComponentSpec]

    @property
    def bus(self) -> Bus: ...

    def camera_ids(self) -> list[str]: ...

    def loaded(self, table: str) -> dict[str, Any]: ...

    async def raise_incident(self, incident: Incident, targets: Sequence[str] | None = None) -> Incident: ...


class VisitorRoster:
    def __init__(self, core: RosterCore, *, timeout: float = 5.0) -> None:
        self.core = core
        self.timeout = timeout  # per visitor system call (on_site, on_emergency)
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False

    def start(self) -> None:
        self._subscription = self.core.bus.subscribe(
            VISITOR_EVENTS, self.on_event, name="visitor-roster", overflow=Overflow.NEVER_DROP
        )

    async def drain(self) -> None:
        """Wait until every visitor event so far is recorded and every announcement is done (tests)."""
        drain = getattr(self._subscription, "drain", None)
        if drain is not None:
            await drain()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        """Finish the announcements in flight (bounded); later scenarios announce nothing.

        The subscription stays: the core closes the bus after the visitor systems stopped, and the
        bus drains never-drop subscribers first, so a sign-in accepted during shutdown is still recorded.
        """
        self._stopped = True
        if self._tasks:
            _, pending = await asyncio.wait(list(self._tasks), timeout=2 * self.timeout + 5)
            for task in pending:
                log.error("visitor roster announcement cut short at shutdown")
                task.cancel()
            if pending:
                await asyncio.wait(pending)

    async def close(self) -> None:
        """Stop, and leave the bus now (for a roster whose bus keeps running)."""
        await self.stop()
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close()

    # -- events ----------------------------------------------------------------------------------

    async def on_event(self, event: VisitorEvent) -> None:
        kind = VisitorEventKind(event.kind)
        visitor = event.visitor
        if kind is VisitorEventKind.SIGNED_IN:
            await record_visit(self.core.store, event.source, visitor.model_copy(update={"signed_out_at": None}))
        elif kind is VisitorEventKind.SIGNED_OUT:
            if visitor.signed_out_at is None:
                visitor = visitor.model_copy(update={"signed_out_at": event.created_at})
            await record_visit(self.core.store, event.source, visitor)
        else:
            await self._watchlist(event, kind)

    async def _watchlist(self, event: VisitorEvent, kind: VisitorEventKind) -> None:
        cameras = self.core.camera_ids()
        camera_id = event.camera_id or (cameras[0] if cameras else "")
        observation = Observation(
            kind=WATCHLIST_KIND,
            camera_id=camera_id,
            confidence=1.0,
            # The visitor system's opaque id and what it said: no name, no face, no photo.
            attributes={
                "visitor_id": event.visitor.visitor_id,
                "source": event.source,
                "event": str(kind),
                "location": event.visitor.location,
            },
        )
        self.core.bus.publish(OBSERVATIONS, observation)
        await self.core.store.audit(
            f"visitors:{event.source}", f"visitor.{kind}", event.visitor.visitor_id,
            {"camera": camera_id or None, "location": event.visitor.location, "observation": observation.id},
        )  # fmt: skip
        log.warning("visitor system %s: %s for visitor %s (camera %s)", event.source, kind, event.visitor.visitor_id,
                    camera_id or "none")  # fmt: skip

    # -- lockdown and evacuation -----------------------------------------------------------------

    def visitor_systems(self) -> dict[str, VisitorSystem]:
        return {n: c for n, c in self.core.loaded("adapters").items() if isinstance(c, VisitorSystem)}

    async def on_scenario(self, name: str, kind: ScenarioKind, exercise: bool, incident_id: str | None) -> None:
        """The door gate's callback: announce in the background, so that no door waits for it."""
        if self._stopped:
            log.warning("scenario %r started while the core stops: no visitor roster is announced", name)
            return
        self._spawn(self.announce(name, exercise, incident_id, kind=str(kind)))

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work, name="visitor-roster-announce")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def announce(
        self, scenario: str, exercise: bool, incident_id: str | None = None, *, kind: str | None = None
    ) -> Incident | None:
        """Raise the ``visitor_roster`` incident and tell every visitor system. Never raises.

        Nothing is raised on a site without visitor management (no visitor system configured and
        no visitor ever recorded).
        """
        try:
            return await self._announce(scenario, exercise, incident_id, kind)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("visitor roster for scenario %r could not be announced", scenario)
            return None

    async def _announce(
        self, scenario: str, exercise: bool, incident_id: str | None, kind: str | None
    ) -> Incident | None:
        store = self.core.store
        systems = self.visitor_systems()
        configured = any(s.table == "adapters" and issubclass(s.cls, VisitorSystem) for s in self.core.specs)
        if not (systems or configured or await has_visits(store)):
            return None
        entries = await self.roster(systems)
        visitors = [e.visitor for e in entries]
        incident = Incident(
            kind=ROSTER_KIND,
            severity=Severity.INFO,
            title=f"{len(entries)} visitor(s) on site as {scenario!r} starts",
            exercise=exercise,
            source=ACTOR,
            details={
                "scenario": scenario,
                "scenario_kind": kind,
                "incident": incident_id,
                "count": len(entries),
                "visitors": [e.as_dict() for e in entries],
            },
        )
        await self.core.raise_incident(incident)
        await store.audit(ACTOR, "visitors.roster_announced", incident.id,
                          {"scenario": scenario, "exercise": exercise, "incident": incident_id,
                           "count": len(entries)})  # fmt: skip
        await asyncio.gather(
            *(self._tell(name, system, scenario, visitors, exercise, incident.id) for name, system in systems.items())
        )
        return incident

    async def roster(self, systems: dict[str, VisitorSystem] | None = None) -> list[RosterEntry]:
        """Who is on site: the stored roster, plus anyone a running visitor system reports that it lacks."""
        entries = await on_site(self.core.store)
        known = {(e.source, e.visitor.visitor_id) for e in entries}
        systems = self.visitor_systems() if systems is None else systems
        reports = await asyncio.gather(*(self._call(system.on_site()) for system in systems.values()))
        for (name, _system), report in zip(systems.items(), reports, strict=True):
            if isinstance(report, BaseException):
                log.warning("visitor system %s: on_site() failed: %s", name, _describe(report, self.timeout))
                continue
            for visitor in report:
                if (name, visitor.visitor_id) not in known:
                    known.add((name, visitor.visitor_id))
                    entries.append(RosterEntry(name, visitor, visitor.created_at))
        return sorted(entries, key=lambda e: (e.visitor.signed_in_at, e.source, e.visitor.visitor_id))

    async def _tell(self, name: str, system: VisitorSystem, scenario: str, roster: list[Visitor], exercise: bool,
                    roster_incident: str) -> None:  # fmt: skip
        result = await self._call(system.on_emergency(scenario, roster, exercise=exercise))
        detail: dict[str, Any] = {"scenario": scenario, "exercise": exercise, "roster_incident": roster_incident}
        if isinstance(result, BaseException):
            detail["error"] = _describe(result, self.timeout)
            log.error("visitor system %s: on_emergency failed: %s", name, detail["error"])
            await self.core.store.audit(ACTOR, "visitors.on_emergency.failed", name, detail)
        else:
            detail["result"] = str(result)
            await self.core.store.audit(ACTOR, "visitors.on_emergency.done", name, detail)

    async def _call(self, work: Awaitable[Any]) -> Any:
        """``work`` under the timeout; an exception is returned, never raised (but cancellation)."""
        try:
            async with asyncio.timeout(self.timeout):
                return await work
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            return exc


def _describe(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {timeout:g}s"
    return f"{type(exc).__name__}: {exc}"
