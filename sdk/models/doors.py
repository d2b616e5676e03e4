"""Door commands and door events, shared by every access-control adapter."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .base import Message


class DoorAction(StrEnum):
    LOCK = "lock"
    UNLOCK = "unlock"
    MOMENTARY_ACCESS = "momentary_access"
    LOCKDOWN = "lockdown"
    LOCKDOWN_RELEASE = "lockdown_release"
    QUERY = "query"


class DoorCommand(Message):
    """A request to change a door. The core checks it for safety before any adapter sees it.

    ``requested_by`` is a person for unlock and lockdown release (never a rule), or
    ``rule:<name>`` for what a rule may do (lock, lockdown).
    """

    door_id: str
    action: DoorAction
    requested_by: str
    reason: str = ""
    incident_id: str | None = None
    exercise: bool = False
    dry_run: bool = False


class DoorEventKind(StrEnum):
    FORCED_OPEN = "forced_open"
    HELD_OPEN = "held_open"
    ACCESS_GRANTED = "access_granted"
    ACCESS_DENIED = "access_denied"
    STATE_CHANGED = "state_changed"
    READER_TAMPER = "reader_tamper"
    DEVICE_OFFLINE = "device_offline"
    DEVICE_ONLINE = "device_online"


class DoorEvent(Message):
    """Something an access-control system reported. Credential holders are opaque ids only."""

    door_id: str
    kind: DoorEventKind
    source: str
    credential_holder: str | None = Field(default=None, description="opaque id, never a name")
    state: str | None = None
    detail: str = ""
