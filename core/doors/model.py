"""``[doors.NAME]`` and ``[scenarios.NAME]`` in plugins.toml."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from campusguard.sdk import DoorAction


class DoorSettings(BaseModel):
    """One door, and the access-control adapter that drives it."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="what people call it; default: the table's name")
    via: str = Field(description="the access-control adapter ([adapters.NAME]) that drives this door")
    adapter_door: str | None = Field(default=None, description="the door's id in that adapter; default: the name")
    zone: str | None = Field(default=None, description="the campus zone it belongs to (scenarios select by zone)")
    camera: str | None = Field(default=None, description="the camera that watches it (tailgating, events)")
    line: str | None = Field(
        default=None, description="tailgating: the camera's line ([cameras.X.lines.NAME]) people cross to enter"
    )
    entry_direction: Literal["in", "out"] = Field(default="in", description="tailgating: which way is entering")
    tailgate_seconds: float = Field(
        default=8.0, gt=0, description="tailgating: how long after an access grant people may walk in on it"
    )
    egress: bool = Field(default=False, description="on an egress path: people must always be able to leave")
    locks: Literal["outside", "both"] = Field(
        default="outside",
        description="outside: locking secures entry only, free egress hardware (panic bar, REX) stays; "
        "both: the lock also holds the door from inside (e.g. a maglock) — never locked if egress",
    )


class ScenarioKind(StrEnum):
    """What a scenario does to its doors (the names school districts use)."""

    LOCKDOWN = "lockdown"  # secure every door of the scenario from outside
    SECURE_PERIMETER = "secure_perimeter"  # lock the outside doors, business as usual inside
    HOLD = "hold"  # stay in rooms: no door changes, people are told
    EVACUATE_UNLOCK = "evacuate_unlock"  # unlock the way out: a person must order it


# Which door command each scenario sends, and which one releases it.
SCENARIO_ACTIONS: dict[ScenarioKind, DoorAction | None] = {
    ScenarioKind.LOCKDOWN: DoorAction.LOCKDOWN,
    ScenarioKind.SECURE_PERIMETER: DoorAction.LOCK,
    ScenarioKind.HOLD: None,
    ScenarioKind.EVACUATE_UNLOCK: DoorAction.UNLOCK,
}
RELEASE_ACTIONS: dict[ScenarioKind, DoorAction | None] = {
    ScenarioKind.LOCKDOWN: DoorAction.LOCKDOWN_RELEASE,
    ScenarioKind.SECURE_PERIMETER: DoorAction.UNLOCK,
    ScenarioKind.HOLD: None,
    ScenarioKind.EVACUATE_UNLOCK: DoorAction.LOCK,
}


class ScenarioSettings(BaseModel):
    """A named set of doors and what to do to them."""

    model_config = ConfigDict(extra="forbid")

    kind: ScenarioKind
    doors: list[str] = Field(default_factory=list, description="door names")
    zones: list[str] = Field(default_factory=list, description="every door of these zones")
    description: str = ""


class DoorLookup:
    """Which of the site's doors an adapter's event is about: adapters report their own door ids."""

    def __init__(self, doors: dict[str, DoorSettings]) -> None:
        self._by_adapter = {(d.via, d.adapter_door or n): n for n, d in doors.items()}
        self._by_id = {d.adapter_door or n: n for n, d in doors.items()}

    def name(self, source: str, door_id: str) -> str | None:
        """The door's name in ``[doors]``, by the reporting adapter and its id, else by the id alone."""
        return self._by_adapter.get((source, door_id)) or self._by_id.get(door_id)
