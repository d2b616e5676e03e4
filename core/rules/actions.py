"""What a confirmed incident's ``[[rules.actions]]`` do.

Every action goes through here, so the bridges (door scenarios, dispatch) plug in as adapters and
the lifecycle, audit and retries stay the same for all of them. Deliveries (notify, dispatch) go
through the durable outbox: an action "runs" when its deliveries are queued; the outbox delivers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from campusguard.sdk import Incident, NotReady, PtzControl

from ..doors.gate import DoorGate
from ..store import SQLiteStore
from .model import Action


class ActionError(Exception):
    """An action that cannot run as configured (a camera without PTZ, a preset it lacks)."""


class ActionCore(Protocol):
    store: SQLiteStore

    def wake_delivery(self, targets: Sequence[str]) -> None: ...

    def loaded(self, table: str) -> dict[str, Any]: ...

    @property
    def doors(self) -> DoorGate: ...


class ActionRunner:
    def __init__(self, core: ActionCore) -> None:
        self.core = core
        self._runners: Mapping[str, Callable[[Action, Incident, str], Any]] = {
            "notify": self._deliver,
            "dispatch": self._deliver,
            "ptz_preset": self._ptz_preset,
            "door_scenario": self._door_scenario,
        }

    async def run(self, action: Action, incident: Incident, *, rule: str) -> str:
        """Run ``action`` for ``incident``; return what was done (for the audit log)."""
        result: str = await self._runners[action.do](action, incident, rule)
        return result

    async def _deliver(self, action: Action, incident: Incident, rule: str) -> str:
        await self.core.store.enqueue_deliveries(incident, action.targets)
        self.core.wake_delivery(action.targets)
        return f"queued for {', '.join(action.targets)}"

    async def _ptz_preset(self, action: Action, incident: Incident, rule: str) -> str:
        assert action.camera is not None and action.preset is not None  # the model checks
        camera = self.core.loaded("cameras").get(action.camera)
        if camera is None:
            raise NotReady(f"camera {action.camera!r} is not running")
        if not isinstance(camera, PtzControl):
            raise ActionError(f"camera {action.camera!r} ({type(camera).kind}) cannot move: it has no PTZ control")
        try:
            return await camera.goto_preset(action.preset)
        except LookupError as exc:
            raise ActionError(str(exc)) from exc

    async def _door_scenario(self, action: Action, incident: Incident, rule: str) -> str:
        assert action.scenario is not None  # the model checks
        results = await self.core.doors.scenario(
            action.scenario, requested_by=f"rule:{rule}", reason=incident.title, incident_id=incident.id,
            exercise=incident.exercise,
        )  # fmt: skip
        summary = "; ".join(f"{r.door}: {r.action} {r.outcome}" for r in results) or "no door changes"
        if any(r.outcome == "failed" for r in results):
            # Retried by the lifecycle: securing a door twice is harmless, leaving one open is not.
            raise ActionError(f"scenario {action.scenario!r}: {summary}")
        return f"scenario {action.scenario!r}: {summary}"
