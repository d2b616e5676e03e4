"""Doors and access points of an ONVIF door controller: lists, state in words, commands.

Every call goes through :meth:`OnvifSession.call` of the ONVIF library (WS-Security, the device's
clock, a timeout, library errors turned into campusguard errors). What comes back is reworded to
name the *door controller* rather than a camera, and a SOAP Fault on a door operation becomes a
:class:`~.errors.DoorCommandRefused` carrying the fault's code, subcodes and reason: a refused
command is never reported as done.

This module imports no SOAP library at import time; it runs only once a session exists.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from campusguard.sdk import CampusguardError, DoorAction

from ..errors import DeviceFault
from .errors import DoorCommandRefused, DoorTokenNotFound
from .services import ACCESSCONTROL, DOORCONTROL

if TYPE_CHECKING:
    from ..client import OnvifSession

#: Pages of a Get...List one listing follows at most (a device repeating a reference cannot loop us).
MAX_PAGES = 100

MODE_WORDS = {
    "Locked": "locked",
    "Unlocked": "unlocked",
    "Accessed": "released for momentary access",
    "Blocked": "blocked",
    "LockedDown": "locked down",
    "LockedOpen": "locked open",
    "DoubleLocked": "double locked",
    "Unknown": "in an unknown mode",
}
PHYSICAL_WORDS = {"Open": "open", "Closed": "closed", "Fault": "sensor fault", "Unknown": "unknown"}
LOCK_WORDS = {"Locked": "locked", "Unlocked": "unlocked", "Fault": "fault", "Unknown": "unknown"}
ALARM_WORDS = {"Normal": "no alarm", "DoorForcedOpen": "ALARM: forced open", "DoorOpenTooLong": "ALARM: held open"}
TAMPER_WORDS = {"NotInTamper": "no tamper", "TamperDetected": "TAMPER detected", "Unknown": "tamper unknown"}
FAULT_WORDS = {"NotInFault": "", "FaultDetected": "FAULT detected", "Unknown": ""}


def words(table: Mapping[str, str], value: str | None) -> str:
    """The words for an enumeration value; a vendor's own value is passed through as it is."""
    if value is None:
        return "not reported"
    return table.get(value, value)


@dataclass(frozen=True)
class Operation:
    """How one :class:`DoorAction` is carried out and checked."""

    name: str  # the DoorControl operation
    capability: str  # the DoorCapabilities attribute that says a door supports it
    verb: str  # for messages: "could not <verb> door 'front'"
    expected: frozenset[str] | None  # DoorModes that show it worked; None: any but ``refused``
    refused: frozenset[str] = frozenset()  # DoorModes that show it did not


OPERATIONS: dict[DoorAction, Operation] = {
    DoorAction.LOCK: Operation("LockDoor", "Lock", "lock", frozenset({"Locked", "DoubleLocked"})),
    DoorAction.UNLOCK: Operation("UnlockDoor", "Unlock", "unlock", frozenset({"Unlocked"})),
    # A short access time may have run out by the time the state is read: Locked is fine too.
    DoorAction.MOMENTARY_ACCESS: Operation(
        "AccessDoor", "Access", "release", frozenset({"Accessed", "Unlocked", "Locked"})
    ),
    DoorAction.LOCKDOWN: Operation("LockDownDoor", "LockDown", "lock down", frozenset({"LockedDown"})),
    DoorAction.LOCKDOWN_RELEASE: Operation(
        "LockDownReleaseDoor", "LockDown", "release the lockdown of", None, frozenset({"LockedDown"})
    ),
}


@dataclass(frozen=True)
class DoorInfo:
    token: str
    name: str
    description: str = ""
    #: DoorCapabilities attributes as reported (``None``: not reported)
    capabilities: Mapping[str, bool | None] = field(default_factory=dict)

    def refuses(self, capability: str) -> bool:
        """Only an explicit ``false`` counts: a device that says nothing is asked anyway."""
        return self.capabilities.get(capability) is False


@dataclass(frozen=True)
class AccessPointInfo:
    token: str
    name: str
    door_token: str | None  # the Entity it controls, when that is a door


@dataclass(frozen=True)
class DoorState:
    """``tdc:DoorState``: each field as the device reported it (``None`` when it did not)."""

    mode: str | None = None
    physical: str | None = None
    lock: str | None = None
    alarm: str | None = None
    tamper: str | None = None
    tamper_reason: str | None = None
    fault: str | None = None
    fault_reason: str | None = None

    def describe(self) -> str:
        """``locked; lock locked; door closed; no alarm; no tamper``."""
        parts = [
            words(MODE_WORDS, self.mode) if self.mode is not None else "mode not reported",
            f"lock {words(LOCK_WORDS, self.lock)}",
            f"door {words(PHYSICAL_WORDS, self.physical)}",
            words(ALARM_WORDS, self.alarm) if self.alarm is not None else "alarm not reported",
            words(TAMPER_WORDS, self.tamper) if self.tamper is not None else "tamper not reported",
        ]
        if self.tamper == "TamperDetected" and self.tamper_reason:
            parts[-1] += f" ({self.tamper_reason})"
        fault = words(FAULT_WORDS, self.fault) if self.fault is not None else ""
        if fault:
            parts.append(fault + (f" ({self.fault_reason})" if self.fault_reason else ""))
        return "; ".join(parts)


# -- calls -------------------------------------------------------------------------------------------


def controller_text(text: str, name: str) -> str:
    """The ONVIF library speaks of cameras: ``camera 'x'`` becomes ``door controller 'x'``."""
    return text.replace(f"camera '{name}'", f"door controller '{name}'").replace("the camera", "the device")


def controller_words(exc: CampusguardError, name: str) -> CampusguardError:
    """The same error, of the same type, about a door controller rather than a camera."""
    message = controller_text(str(exc), name)
    if message == str(exc):
        return exc
    try:
        return type(exc)(message)
    except TypeError:  # an error type with a different constructor: keep it as it is
        return exc


@asynccontextmanager
async def controller_errors(name: str) -> AsyncIterator[None]:
    """Re-raise campusguard errors from the ONVIF library reworded by :func:`controller_words`."""
    try:
        yield
    except CampusguardError as exc:
        reworded = controller_words(exc, name)
        if reworded is exc:
            raise
        raise reworded from exc


def _local(value: Any) -> str:
    text = str(getattr(value, "text", value) or "")
    return text.rpartition("}")[2].rpartition(":")[2]


def refused(exc: BaseException, name: str, operation: str, what: str) -> DoorCommandRefused | None:
    """A :class:`DoorCommandRefused` for the SOAP Fault behind ``exc``, or ``None`` if there is none."""
    import zeep.exceptions

    fault = exc.__cause__
    if not isinstance(fault, zeep.exceptions.Fault):
        return None
    code = _local(fault.code) or "no code"
    subcodes = tuple(_local(s) for s in (fault.subcodes or []))
    reason = " ".join(str(fault.message or "no reason given").split())[:300]
    path = "/".join((code, *subcodes))
    cls = DoorTokenNotFound if "NotFound" in subcodes else DoorCommandRefused
    message = f"door controller '{name}' refused {operation} for {what}: {reason} (SOAP fault {path})"
    return cls(message, code=code, subcodes=subcodes, reason=reason)


async def call(
    session: OnvifSession, service: str, operation: str, params: Mapping[str, Any] | None = None, *, what: str
) -> Any:
    """One guarded SOAP call; ``what`` names what it is about (``door 'front' (token Door_1)``)."""
    name = session.camera_id
    async with controller_errors(name):
        try:
            return await session.call(service, operation, params)
        except DeviceFault as exc:
            fault = refused(exc, name, operation, what)
            if fault is None:
                raise
            raise fault from exc


async def _listing(session: OnvifSession, service: str, operation: str, items: str) -> list[Any]:
    found: list[Any] = []
    reference: str | None = None
    seen: set[str] = set()
    for _ in range(MAX_PAGES):
        params = {"StartReference": reference} if reference else {}
        result = await call(session, service, operation, params, what="its list")
        found.extend(getattr(result, items, None) or [])
        reference = getattr(result, "NextStartReference", None)
        if not reference or reference in seen:
            break
        seen.add(reference)
    return found


async def list_doors(session: OnvifSession) -> list[DoorInfo]:
    """Every door the controller has (GetDoorInfoList, all pages)."""
    doors = []
    for item in await _listing(session, DOORCONTROL, "GetDoorInfoList", "DoorInfo"):
        token = getattr(item, "token", None)
        if not token:
            continue
        caps = getattr(item, "Capabilities", None)
        capabilities: dict[str, bool | None] = {}
        for attribute in ("Access", "Lock", "Unlock", "Block", "DoubleLock", "LockDown", "LockOpen",
                          "DoorMonitor", "LockMonitor", "Alarm", "Tamper", "Fault"):  # fmt: skip
            value = getattr(caps, attribute, None)
            capabilities[attribute] = None if value is None else bool(value)
        name = str(getattr(item, "Name", None) or token)
        doors.append(DoorInfo(str(token), name, str(getattr(item, "Description", None) or ""), capabilities))
    return doors


async def list_access_points(session: OnvifSession) -> list[AccessPointInfo]:
    """Every access point (reader) and the door it controls (GetAccessPointInfoList, all pages)."""
    points = []
    for item in await _listing(session, ACCESSCONTROL, "GetAccessPointInfoList", "AccessPointInfo"):
        token = getattr(item, "token", None)
        if not token:
            continue
        entity_type = _local(getattr(item, "EntityType", None))
        entity = getattr(item, "Entity", None)
        # EntityType defaults to tdc:Door when absent (ONVIF Access Control spec).
        door = str(entity) if entity and entity_type in ("", "Door") else None
        points.append(AccessPointInfo(str(token), str(getattr(item, "Name", None) or token), door))
    return points


async def door_state(session: OnvifSession, token: str, what: str) -> DoorState:
    result = await call(session, DOORCONTROL, "GetDoorState", {"Token": token}, what=what)
    tamper, fault = getattr(result, "Tamper", None), getattr(result, "Fault", None)

    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return DoorState(
        mode=text(getattr(result, "DoorMode", None)),
        physical=text(getattr(result, "DoorPhysicalState", None)),
        lock=text(getattr(result, "LockPhysicalState", None)),
        alarm=text(getattr(result, "Alarm", None)),
        tamper=text(getattr(tamper, "State", None)),
        tamper_reason=text(getattr(tamper, "Reason", None)),
        fault=text(getattr(fault, "State", None)),
        fault_reason=text(getattr(fault, "Reason", None)),
    )


async def send(session: OnvifSession, operation: str, params: Mapping[str, Any], what: str) -> None:
    """A door operation; raises :class:`DoorCommandRefused` when the device answers with a Fault."""
    await call(session, DOORCONTROL, operation, params, what=what)
