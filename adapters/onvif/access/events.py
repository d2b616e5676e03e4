"""Door and access-point notifications turned into :class:`DoorEvent` messages.

The ONVIF library's :class:`~campusguard.adapters.onvif.events.PullPointSubscriber` subscribes,
pulls, renews and re-subscribes; it hands each notification over as a ``CameraEvent`` (topic,
Source and Data SimpleItems, PropertyOperation). :class:`DoorEventMapper` reads the Profile C
topics from those:

- ``tns1:Door/State/DoorAlarm``: ``DoorForcedOpen`` → ``forced_open``, ``DoorOpenTooLong`` →
  ``held_open``, back to ``Normal`` → ``state_changed`` (alarm cleared);
- ``tns1:Door/State/DoorTamper``: ``TamperDetected`` → ``reader_tamper``;
- ``tns1:Door/State/{DoorMode, DoorPhysicalState, LockPhysicalState, DoubleLockPhysicalState,
  DoorFault}`` → ``state_changed``;
- ``tns1:AccessControl/AccessGranted/*`` → ``access_granted`` and ``tns1:AccessControl/Denied/*``
  (``AccessDenied/*`` from some vendors) → ``access_denied``, at the door the access point
  controls (GetAccessPointInfoList).

Door state topics are properties: a new subscription first reports every door as it is
(``Initialized``). Those are learned quietly, except an alarm, tamper or fault that is active
right then; a value repeated after a re-subscription is not reported twice.

Credential holders are opaque: a keyed hash (HMAC-SHA256 with the site's key) of the
``CredentialToken`` (or card number, or identifier). ``CredentialHolderName`` is never read.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass

from campusguard.sdk import CameraEvent, DoorEvent, DoorEventKind

from .doors import ALARM_WORDS, LOCK_WORDS, MODE_WORDS, PHYSICAL_WORDS, AccessPointInfo, words

DOOR_STATE_FIELDS = frozenset(
    {"DoorMode", "DoorPhysicalState", "LockPhysicalState", "DoubleLockPhysicalState", "DoorAlarm", "DoorTamper",
     "DoorFault"}
)  # fmt: skip
DENIED = frozenset({"Denied", "AccessDenied"})
_STATE_DETAIL = {
    "DoorMode": ("door ", MODE_WORDS),
    "DoorPhysicalState": ("door ", PHYSICAL_WORDS),
    "LockPhysicalState": ("lock ", LOCK_WORDS),
    "DoubleLockPhysicalState": ("double lock ", LOCK_WORDS),
}
# Data items that identify whoever presented something, and the prefix of their opaque id.
_HOLDER_ITEMS = (("CredentialToken", "cred"), ("Card", "card"), ("IdentifierValue", "id"))
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")  # CredentialNotFound → Credential Not Found


def topic_path(topic: str) -> str:
    """``tns1:Door/State/DoorAlarm`` → ``Door/State/DoorAlarm`` (whatever prefix the device chose)."""
    return "/".join(part.strip().rpartition(":")[2] for part in topic.strip().split("/"))


def holder_id(value: str, key: bytes, prefix: str = "cred") -> str:
    """An opaque, stable id: keyed, so that a list of likely tokens or card numbers cannot reverse it."""
    return f"{prefix}-{hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]}"


def _short(text: str, limit: int = 120) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class _Door:
    door_id: str
    note: str  # "" or why the id is the device's token


class DoorEventMapper:
    """Turns one controller's notifications into DoorEvents; remembers each door's last state."""

    def __init__(self, source: str, holder_key: bytes) -> None:
        self.source = source
        self.holder_key = holder_key
        self.door_ids: dict[str, str] = {}  # DoorToken → campusguard door id
        self.access_points: dict[str, AccessPointInfo] = {}
        self._states: dict[tuple[str, str], str] = {}  # (DoorToken, field) → last State

    def update(self, door_ids: Mapping[str, str], access_points: Mapping[str, AccessPointInfo]) -> None:
        self.door_ids, self.access_points = dict(door_ids), dict(access_points)

    def state_of(self, token: str) -> str | None:
        """``locked, closed``: the door's mode and whether it is open, as last reported."""
        mode, physical = self._states.get((token, "DoorMode")), self._states.get((token, "DoorPhysicalState"))
        parts = [words(MODE_WORDS, mode) if mode else "", words(PHYSICAL_WORDS, physical) if physical else ""]
        return ", ".join(p for p in parts if p) or None

    def map(self, event: CameraEvent) -> DoorEvent | None:
        """The DoorEvent for ``event``, or ``None`` when it is not news (or not about doors)."""
        parts = topic_path(event.topic).split("/")
        if len(parts) == 3 and parts[:2] == ["Door", "State"] and parts[2] in DOOR_STATE_FIELDS:
            return self._door_state(parts[2], event)
        if len(parts) >= 2 and parts[0] == "AccessControl":
            if parts[1] == "AccessGranted":
                return self._access(DoorEventKind.ACCESS_GRANTED, parts[2:], event)
            if parts[1] in DENIED:
                return self._access(DoorEventKind.ACCESS_DENIED, parts[2:], event)
        return None

    # -- doors ---------------------------------------------------------------------------------

    def _door(self, token: str) -> _Door:
        door_id = self.door_ids.get(token)
        if door_id is not None:
            return _Door(door_id, "")
        return _Door(token, f" (door token {token!r} is not in this adapter's doors)")

    def _door_state(self, field: str, event: CameraEvent) -> DoorEvent | None:
        token, value = event.source.get("DoorToken"), event.data.get("State")
        if not token or value is None:
            return None
        previous = self._states.get((token, field))
        self._states[(token, field)] = value
        if previous == value:
            return None  # repeated, e.g. Initialized again after a re-subscription
        quietly = previous is None  # the state when the subscription began: learned, not news
        kind = DoorEventKind.STATE_CHANGED
        if field == "DoorAlarm":
            if value == "DoorForcedOpen":
                kind, detail = DoorEventKind.FORCED_OPEN, "door forced open"
            elif value == "DoorOpenTooLong":
                kind, detail = DoorEventKind.HELD_OPEN, "door held open too long"
            elif quietly:
                return None
            else:
                detail = f"door alarm cleared (was {words(ALARM_WORDS, previous).removeprefix('ALARM: ')})"
        elif field == "DoorTamper":
            if value == "TamperDetected":
                kind, detail = DoorEventKind.READER_TAMPER, "door tamper detected"
            elif quietly or previous != "TamperDetected":
                return None
            else:
                detail = "door tamper cleared"
        elif field == "DoorFault":
            if value == "FaultDetected":
                detail = "door fault detected"
            elif quietly or previous != "FaultDetected":
                return None
            else:
                detail = "door fault cleared"
        else:
            if quietly and event.property_operation == "Initialized":
                return None
            prefix, table = _STATE_DETAIL[field]
            detail = prefix + words(table, value)
        door = self._door(token)
        return DoorEvent(
            door_id=door.door_id, kind=kind, source=self.source, state=self.state_of(token), detail=detail + door.note
        )

    # -- access points -------------------------------------------------------------------------

    def _access(self, kind: DoorEventKind, variant: list[str], event: CameraEvent) -> DoorEvent:
        point_token = event.source.get("AccessPointToken", "")
        point = self.access_points.get(point_token)
        if point is not None and point.door_token:
            door = self._door(point.door_token)
            where = f"at {point.name!r} ({point_token})"
        else:
            door = _Door(point_token or "unknown", f" (access point {point_token!r} controls no door known here)")
            where = f"at access point {point_token!r}"
        holder = None
        for item, prefix in _HOLDER_ITEMS:  # CredentialHolderName is deliberately never read
            value = event.data.get(item)
            if value:
                holder = holder_id(value, self.holder_key, prefix)
                break
        how = ", ".join(_CAMEL.sub(" ", part).lower() for part in variant) or "unspecified"
        if kind is DoorEventKind.ACCESS_GRANTED:
            detail = f"access granted ({how}) {where}"
        else:
            reason = event.data.get("Reason")
            detail = f"access denied ({how}) {where}" + (f": {_short(reason)}" if reason else "")
        token = point.door_token if point is not None and point.door_token else None
        state = self.state_of(token) if token else None
        return DoorEvent(
            door_id=door.door_id, kind=kind, source=self.source, credential_holder=holder, state=state,
            detail=detail + door.note,
        )  # fmt: skip
