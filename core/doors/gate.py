"""The one way a door command reaches an adapter: checked for safety, audited before and after.

- Unlock, momentary access and lockdown release need an authenticated person: a rule (``rule:NAME``)
  is refused, and so is a name the operating system did not vouch for.
- Lock and lockdown never hold an egress door shut from inside: a door on an egress path whose lock
  also holds it from inside (``locks = "both"``) is refused; one with free-egress hardware
  (``locks = "outside"``) is secured from outside only.
- Dry runs are audited and reach no adapter; exercises reach the adapter marked as drills.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any

from campusguard.sdk import DOOR_COMMANDS, AccessControl, DoorAction, DoorCommand

from ..store import SQLiteStore
from .model import RELEASE_ACTIONS, SCENARIO_ACTIONS, DoorSettings, ScenarioKind, ScenarioSettings

log = logging.getLogger("campusguard.doors")

HUMAN_ONLY = frozenset({DoorAction.UNLOCK, DoorAction.MOMENTARY_ACCESS, DoorAction.LOCKDOWN_RELEASE})
SECURING = frozenset({DoorAction.LOCK, DoorAction.LOCKDOWN})
# Scenarios whose start is announced to ``on_scenario`` (the visitor roster): people must be accounted for.
ANNOUNCED = frozenset({ScenarioKind.LOCKDOWN, ScenarioKind.EVACUATE_UNLOCK})


class DoorRefused(Exception):
    """A request that names no door or scenario the site has."""


@dataclass(frozen=True)
class DoorResult:
    door: str
    action: str
    outcome: str  # done, refused, failed, dry_run
    detail: str
    command_id: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def is_rule(requested_by: str) -> bool:
    return requested_by.startswith("rule:")


class DoorGate:
    def __init__(
        self,
        store: SQLiteStore,
        doors: dict[str, DoorSettings],
        scenarios: dict[str, ScenarioSettings],
        adapters: Callable[[], dict[str, Any]],
        publish: Callable[[DoorCommand], None] | None = None,
        timeout: float = 5.0,
        on_scenario: Callable[[str, ScenarioKind, bool, str | None], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.doors = doors
        self.scenarios = scenarios
        self._adapters = adapters
        self._publish = publish
        self.timeout = timeout
        self.on_scenario = on_scenario  # (name, kind, exercise, incident_id): a lockdown or evacuation started

    def scenario_doors(self, name: str) -> list[str]:
        scenario = self.scenarios.get(name)
        if scenario is None:
            raise DoorRefused(f"no scenario {name!r}; scenarios: {', '.join(sorted(self.scenarios)) or 'none'}")
        chosen = list(scenario.doors)
        chosen += [d for d, door in self.doors.items() if door.zone in scenario.zones and d not in chosen]
        return chosen

    def _refusal(self, door_id: str, door: DoorSettings, action: DoorAction, requested_by: str,
                 authenticated_as: str | None) -> str | None:  # fmt: skip
        if action in HUMAN_ONLY:
            if is_rule(requested_by):
                return f"{action} of door {door_id!r} needs a person; rules may only secure doors"
            if not authenticated_as:
                return f"{action} of door {door_id!r} needs an authenticated person (the CLI or API), not just a name"
        if action in SECURING and door.egress and door.locks == "both":
            return (
                f"door {door_id!r} is on an egress path and its lock holds it from inside: "
                f"{action} could trap people, so it is never sent"
            )
        return None

    async def command(
        self, door_id: str, action: DoorAction, *, requested_by: str, authenticated_as: str | None = None,
        reason: str = "", incident_id: str | None = None, exercise: bool = False, dry_run: bool = False,
    ) -> DoorResult:  # fmt: skip
        door = self.doors.get(door_id)
        if door is None:
            raise DoorRefused(f"no door {door_id!r}; doors: {', '.join(sorted(self.doors)) or 'none'}")
        command = DoorCommand(
            door_id=door.adapter_door or door_id, action=action, requested_by=requested_by, reason=reason,
            incident_id=incident_id, exercise=exercise, dry_run=dry_run,
        )  # fmt: skip
        audit = {
            "door": door_id, "via": door.via, "adapter_door": command.door_id, "authenticated_as": authenticated_as,
            "reason": reason, "incident": incident_id, "exercise": exercise, "dry_run": dry_run,
            "command_id": command.id,
        }  # fmt: skip
        refusal = self._refusal(door_id, door, action, requested_by, authenticated_as)
        if refusal is not None:
            log.warning("door command refused: %s (by %s)", refusal, requested_by)
            return await self._finish(command, door_id, "refused", refusal, audit)
        if dry_run:
            would = f"would send {action} to {door.via} for door {command.door_id!r}"
            return await self._finish(command, door_id, "dry_run", would, audit)
        if action in SECURING and door.egress:
            audit["egress"] = "secured from outside; free egress hardware untouched"
        await self.store.audit(requested_by, f"door.{action}.requested", door_id, audit)
        adapter = self._adapters().get(door.via)
        if not isinstance(adapter, AccessControl):
            return await self._finish(command, door_id, "failed", f"access control {door.via!r} is not running", audit)
        try:
            async with asyncio.timeout(self.timeout):
                detail = await adapter.execute(command)
        except Exception as exc:  # an adapter's failure is a result to audit, never a crash
            reason_text = f"no answer within {self.timeout:g}s" if isinstance(exc, TimeoutError) else str(exc)
            return await self._finish(command, door_id, "failed", f"{type(exc).__name__}: {reason_text}", audit)
        if self._publish is not None:
            self._publish(command)
        return await self._finish(command, door_id, "done", detail, audit)

    async def _finish(
        self, command: DoorCommand, door_id: str, outcome: str, detail: str, audit: dict[str, Any]
    ) -> DoorResult:
        await self.store.audit(
            command.requested_by, f"door.{command.action}.{outcome}", door_id, {**audit, "detail": detail}
        )
        if outcome == "failed":
            log.error("door %s: %s failed: %s", door_id, command.action, detail)
        return DoorResult(door_id, str(command.action), outcome, detail, command.id)

    async def scenario(
        self, name: str, *, release: bool = False, requested_by: str, authenticated_as: str | None = None,
        reason: str = "", incident_id: str | None = None, exercise: bool = False, dry_run: bool = False,
    ) -> list[DoorResult]:  # fmt: skip
        """Send a scenario's command (or its release) to all of its doors at once."""
        doors = self.scenario_doors(name)
        kind = self.scenarios[name].kind
        action = (RELEASE_ACTIONS if release else SCENARIO_ACTIONS)[kind]
        await self.store.audit(
            requested_by, f"scenario.{'release' if release else 'start'}", name,
            {"kind": str(kind), "doors": doors, "exercise": exercise, "dry_run": dry_run, "incident": incident_id,
             "authenticated_as": authenticated_as, "reason": reason},
        )  # fmt: skip
        if self.on_scenario is not None and kind in ANNOUNCED and not (release or dry_run):
            try:
                await self.on_scenario(name, kind, exercise, incident_id)
            except Exception:  # the doors never depend on who listens
                log.exception("scenario %s: on_scenario failed", name)
        if action is None:
            return []  # e.g. hold: people are told (the rule's notify), no door changes
        options: dict[str, Any] = {
            "requested_by": requested_by, "authenticated_as": authenticated_as, "reason": reason,
            "incident_id": incident_id, "exercise": exercise, "dry_run": dry_run,
        }  # fmt: skip
        return list(await asyncio.gather(*(self.command(door, action, **options) for door in doors)))


def publisher(bus: Any) -> Callable[[DoorCommand], None]:
    return lambda command: bus.publish(DOOR_COMMANDS, command)
