"""A small ONVIF Profile C door controller: DoorControl, AccessControl and PullPoint events.

Built on :class:`~peers.onvif_events_sim.EventsSimulator` (device service, WS-Security
UsernameToken digests, PullPoint subscriptions), SOAP 1.2 over aiohttp in the test's own loop::

    sim = DoorSimulator(on_response=check)   # two doors, two access points by default
    await sim.start()
    sim.force_open("Door_1")                 # DoorPhysicalState Open + DoorAlarm DoorForcedOpen
    sim.present("AP_1", "CRED_7", "Jane Doe", granted=False, reason="CredentialNotEnabled")

Device service: GetServices lists the DoorControl and AccessControl services with their XAddrs,
and their service capabilities when asked (``IncludeCapability``). Door addresses come only from
GetServices: ``tt:Capabilities`` (GetCapabilities) has no element for them, and onvif-zeep-async's
GetCapabilities fallback reads only its top-level categories. DoorControl: GetServiceCapabilities,
GetDoorInfoList (paged by ``MaxLimit``), GetDoorInfo,
GetDoorState, AccessDoor, LockDoor, UnlockDoor, LockDownDoor, LockDownReleaseDoor, LockOpenDoor,
LockOpenReleaseDoor; BlockDoor and DoubleLockDoor are refused (the doors' capabilities say so).
AccessControl: GetServiceCapabilities, GetAccessPointInfoList, GetAccessPointInfo,
GetAccessPointState. Every change of a door's mode or lock is also sent as a ``tns1:Door/State``
event. Unknown tokens are answered with ``env:Sender/ter:InvalidArgVal/ter:NotFound``; a door in
lockdown (or locked open) refuses other commands with ``env:Receiver/ter:Action/ter:Failure``.
Every answer goes through ``on_response(service, operation, body)`` so tests validate it.
"""

from __future__ import annotations

import asyncio
import contextlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TypeVar
from xml.sax.saxutils import escape, quoteattr

import isodate
from aiohttp import web
from peers.onvif_events_sim import NAMESPACES as EVENT_NAMESPACES
from peers.onvif_events_sim import EventsSimulator, SoapFault

TDC = "http://www.onvif.org/ver10/doorcontrol/wsdl"
TAC = "http://www.onvif.org/ver10/accesscontrol/wsdl"
NAMESPACES = {**EVENT_NAMESPACES, "tdc": TDC, "tac": TAC, "pt": "http://www.onvif.org/ver10/pacs"}
CAPABILITIES = ("Access", "AccessTimingOverride", "Lock", "Unlock", "LockDown", "LockOpen", "DoorMonitor",
                "LockMonitor", "Alarm", "Tamper", "Fault")  # fmt: skip
# The DoorState fields and the tns1:Door/State topic each one is reported on.
_T = TypeVar("_T")
STATE_TOPICS = {
    "mode": "tns1:Door/State/DoorMode",
    "physical": "tns1:Door/State/DoorPhysicalState",
    "lock": "tns1:Door/State/LockPhysicalState",
    "alarm": "tns1:Door/State/DoorAlarm",
    "tamper": "tns1:Door/State/DoorTamper",
    "fault": "tns1:Door/State/DoorFault",
}


@dataclass
class SimDoor:
    token: str
    name: str
    description: str = ""
    mode: str = "Locked"  # tdc:DoorMode
    physical: str = "Closed"  # tdc:DoorPhysicalState
    lock: str = "Locked"  # tdc:LockPhysicalState
    alarm: str = "Normal"  # tdc:DoorAlarmState
    tamper: str = "NotInTamper"  # tdc:DoorTamperState
    fault: str = "NotInFault"  # tdc:DoorFaultState
    capabilities: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(CAPABILITIES, True))
    stuck: bool = False  # accepts every command and changes nothing (a jammed lock, a lying controller)


@dataclass
class SimAccessPoint:
    token: str
    name: str
    door: str  # the DoorToken it controls
    enabled: bool = True


def default_doors() -> list[SimDoor]:
    return [SimDoor("Door_1", "Front entrance"), SimDoor("Door_2", "Gym side door")]


def default_access_points() -> list[SimAccessPoint]:
    return [SimAccessPoint("AP_1", "Front entrance reader", "Door_1"), SimAccessPoint("AP_2", "Gym reader", "Door_2")]


class DoorSimulator(EventsSimulator):
    def __init__(
        self,
        *,
        doors: list[SimDoor] | None = None,
        access_points: list[SimAccessPoint] | None = None,
        access_time: float = 2.0,
        max_limit: int = 10,
        **options: object,
    ) -> None:
        super().__init__(**options)  # type: ignore[arg-type]
        self.doors = {d.token: d for d in (default_doors() if doors is None else doors)}
        self.access_points = {a.token: a for a in (default_access_points() if access_points is None else access_points)}
        self.access_time, self.max_limit = access_time, max_limit
        self.commands: list[tuple[str, str]] = []  # (operation, token) of every accepted door command
        self._relocks: dict[str, asyncio.Task[None]] = {}
        for door in self.doors.values():
            self._publish_state(door, tuple(STATE_TOPICS))

    # -- control from tests --------------------------------------------------------------------

    async def start(self) -> DoorSimulator:
        app = web.Application()
        app.router.add_post("/onvif/device_service", self._device)
        app.router.add_post("/onvif/events_service", self._events)
        app.router.add_post("/onvif/subscription/{id}", self._subscription)
        app.router.add_post("/onvif/doorcontrol_service", self._doorcontrol)
        app.router.add_post("/onvif/accesscontrol_service", self._accesscontrol)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for task in list(self._relocks.values()):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._relocks.clear()
        await super().stop()

    def set_door(self, token: str, **fields: str) -> None:
        """Change a door's state fields (``physical="Open"``) and send the events a device would."""
        door = self.doors[token]
        changed = [name for name, value in fields.items() if getattr(door, name) != value]
        for name, value in fields.items():
            setattr(door, name, value)
        self._publish_state(door, changed)

    def force_open(self, token: str) -> None:
        self.set_door(token, physical="Open", alarm="DoorForcedOpen")

    def hold_open(self, token: str) -> None:
        self.set_door(token, physical="Open", alarm="DoorOpenTooLong")

    def present(
        self, access_point: str, credential: str, holder: str, *, granted: bool, reason: str = "CredentialNotEnabled"
    ) -> None:
        """A card shown at a reader: ``AccessGranted/Credential`` or ``Denied/Credential``."""
        data = {"CredentialToken": credential, "CredentialHolderName": holder}
        if granted:
            self.emit("tns1:AccessControl/AccessGranted/Credential", source={"AccessPointToken": access_point},
                      data=data, operation=None)  # fmt: skip
        else:
            self.emit("tns1:AccessControl/Denied/Credential", source={"AccessPointToken": access_point},
                      data=data | {"Reason": reason}, operation=None)  # fmt: skip

    def present_unknown_card(self, access_point: str, card: str) -> None:
        self.emit("tns1:AccessControl/Denied/CredentialNotFound/Card", source={"AccessPointToken": access_point},
                  data={"Card": card}, operation=None)  # fmt: skip

    # -- HTTP handlers -------------------------------------------------------------------------

    async def _doorcontrol(self, request: web.Request) -> web.Response:
        return await self._handle(request, "doorcontrol", self._doorcontrol_operation)

    async def _accesscontrol(self, request: web.Request) -> web.Response:
        return await self._handle(request, "accesscontrol", self._accesscontrol_operation)

    async def _device_operation(self, operation: str, element: ET.Element, request: web.Request) -> str:
        if operation != "GetServices":
            return await super()._device_operation(operation, element, request)
        base = f"http://{self.host}:{self.port}/onvif"
        include = (element.findtext(f"{{{NAMESPACES['tds']}}}IncludeCapability") or "").strip() in ("true", "1")
        door_caps = f'<tdc:Capabilities MaxLimit="{self.max_limit}"/>'
        access_caps = f'<tac:Capabilities MaxLimit="{self.max_limit}"/>'
        services = [
            (NAMESPACES["tds"], f"{base}/device_service", 2, 60, ""),
            (NAMESPACES["tev"], f"{base}/events_service", 2, 60, ""),
            (TDC, f"{base}/doorcontrol_service", 1, 0, door_caps),
            (TAC, f"{base}/accesscontrol_service", 1, 0, access_caps),
        ]
        items = "".join(
            f"<tds:Service><tds:Namespace>{ns}</tds:Namespace><tds:XAddr>{url}</tds:XAddr>"
            + (f"<tds:Capabilities>{caps}</tds:Capabilities>" if include and caps else "")
            + f"<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor></tds:Version></tds:Service>"
            for ns, url, major, minor, caps in services
        )
        return f"<tds:GetServicesResponse>{items}</tds:GetServicesResponse>"

    # -- DoorControl ---------------------------------------------------------------------------

    async def _doorcontrol_operation(self, operation: str, element: ET.Element, request: web.Request) -> str:
        if operation == "GetServiceCapabilities":
            return (
                f'<tdc:GetServiceCapabilitiesResponse><tdc:Capabilities MaxLimit="{self.max_limit}"/>'
                "</tdc:GetServiceCapabilitiesResponse>"
            )
        if operation == "GetDoorInfoList":
            page, following = self._page(list(self.doors.values()), element, TDC)
            infos = "".join(self._door_info(d) for d in page)
            more = f"<tdc:NextStartReference>{following}</tdc:NextStartReference>" if following else ""
            return f"<tdc:GetDoorInfoListResponse>{more}{infos}</tdc:GetDoorInfoListResponse>"
        if operation == "GetDoorInfo":
            tokens = [t.text or "" for t in element.findall(f"{{{TDC}}}Token")]
            self._too_many(tokens)
            infos = "".join(self._door_info(self.doors[t]) for t in tokens if t in self.doors)
            return f"<tdc:GetDoorInfoResponse>{infos}</tdc:GetDoorInfoResponse>"
        token = element.findtext(f"{{{TDC}}}Token") or ""
        if operation == "GetDoorState":
            return f"<tdc:GetDoorStateResponse>{self._door_state(self._door(token))}</tdc:GetDoorStateResponse>"
        if operation not in _DOOR_COMMANDS:
            raise self._not_supported(operation)
        door = self._door(token)
        capability, refused_in, mode, lock = _DOOR_COMMANDS[operation]
        if not door.capabilities.get(capability, False):
            raise SoapFault(400, "env:Receiver", "ter:ActionNotSupported",
                            f"door {door.token} does not support {operation}")  # fmt: skip
        if door.mode in refused_in:
            raise SoapFault(500, "env:Receiver", "ter:Action/ter:Failure",
                            f"door {door.token} is {door.mode}: {operation} is not possible in that mode")  # fmt: skip
        self.commands.append((operation, door.token))
        if door.stuck:
            return f"<tdc:{operation}Response/>"
        self._cancel_relock(door.token)
        releases = {"LockDownReleaseDoor": "LockedDown", "LockOpenReleaseDoor": "LockedOpen"}
        if operation not in releases or door.mode == releases[operation]:  # a release changes nothing else
            self.set_door(door.token, mode=mode, lock=lock)
        if operation == "AccessDoor":
            requested = element.findtext(f"{{{TDC}}}AccessTime")
            seconds = isodate.parse_duration(requested).total_seconds() if requested else self.access_time
            self._relocks[door.token] = asyncio.create_task(self._relock(door.token, seconds))
        return f"<tdc:{operation}Response/>"

    async def _relock(self, token: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._relocks.pop(token, None)
        if token in self.doors and self.doors[token].mode == "Accessed":
            self.set_door(token, mode="Locked", lock="Locked")

    def _cancel_relock(self, token: str) -> None:
        task = self._relocks.pop(token, None)
        if task is not None:
            task.cancel()

    def _door(self, token: str) -> SimDoor:
        door = self.doors.get(token)
        if door is None:
            raise SoapFault(400, "env:Sender", "ter:InvalidArgVal/ter:NotFound", f"No door with token {token!r}")
        return door

    def _publish_state(self, door: SimDoor, names: tuple[str, ...] | list[str]) -> None:
        for name in names:
            value = getattr(door, name)
            self.emit(STATE_TOPICS[name], source={"DoorToken": door.token}, data={"State": value})

    @staticmethod
    def _door_info(door: SimDoor) -> str:
        caps = " ".join(f'{name}="{str(value).lower()}"' for name, value in door.capabilities.items())
        description = f"<tdc:Description>{escape(door.description)}</tdc:Description>" if door.description else ""
        return (
            f"<tdc:DoorInfo token={quoteattr(door.token)}><tdc:Name>{escape(door.name)}</tdc:Name>{description}"
            f"<tdc:Capabilities {caps}/></tdc:DoorInfo>"
        )

    @staticmethod
    def _door_state(door: SimDoor) -> str:
        return (
            f"<tdc:DoorState><tdc:DoorPhysicalState>{door.physical}</tdc:DoorPhysicalState>"
            f"<tdc:LockPhysicalState>{door.lock}</tdc:LockPhysicalState>"
            f"<tdc:Alarm>{door.alarm}</tdc:Alarm>"
            f"<tdc:Tamper><tdc:State>{door.tamper}</tdc:State></tdc:Tamper>"
            f"<tdc:Fault><tdc:State>{door.fault}</tdc:State></tdc:Fault>"
            f"<tdc:DoorMode>{door.mode}</tdc:DoorMode></tdc:DoorState>"
        )

    # -- AccessControl -------------------------------------------------------------------------

    async def _accesscontrol_operation(self, operation: str, element: ET.Element, request: web.Request) -> str:
        if operation == "GetServiceCapabilities":
            return (
                f'<tac:GetServiceCapabilitiesResponse><tac:Capabilities MaxLimit="{self.max_limit}"/>'
                "</tac:GetServiceCapabilitiesResponse>"
            )
        if operation == "GetAccessPointInfoList":
            page, following = self._page(list(self.access_points.values()), element, TAC)
            infos = "".join(self._access_point_info(a) for a in page)
            more = f"<tac:NextStartReference>{following}</tac:NextStartReference>" if following else ""
            return f"<tac:GetAccessPointInfoListResponse>{more}{infos}</tac:GetAccessPointInfoListResponse>"
        if operation == "GetAccessPointInfo":
            tokens = [t.text or "" for t in element.findall(f"{{{TAC}}}Token")]
            self._too_many(tokens)
            infos = "".join(self._access_point_info(self.access_points[t]) for t in tokens if t in self.access_points)
            return f"<tac:GetAccessPointInfoResponse>{infos}</tac:GetAccessPointInfoResponse>"
        if operation == "GetAccessPointState":
            token = element.findtext(f"{{{TAC}}}Token") or ""
            point = self.access_points.get(token)
            if point is None:
                raise SoapFault(400, "env:Sender", "ter:InvalidArgVal/ter:NotFound", f"No access point {token!r}")
            return (
                "<tac:GetAccessPointStateResponse><tac:AccessPointState>"
                f"<tac:Enabled>{str(point.enabled).lower()}</tac:Enabled>"
                "</tac:AccessPointState></tac:GetAccessPointStateResponse>"
            )
        raise self._not_supported(operation)

    @staticmethod
    def _access_point_info(point: SimAccessPoint) -> str:
        return (
            f"<tac:AccessPointInfo token={quoteattr(point.token)}><tac:Name>{escape(point.name)}</tac:Name>"
            f"<tac:EntityType>tdc:Door</tac:EntityType><tac:Entity>{escape(point.door)}</tac:Entity>"
            '<tac:Capabilities DisableAccessPoint="false"/></tac:AccessPointInfo>'
        )

    # -- helpers -------------------------------------------------------------------------------

    def _page(self, items: list[_T], element: ET.Element, ns: str) -> tuple[list[_T], str | None]:
        """One page of a Get...List: ``StartReference`` is the index to go on from, as a string."""
        limit_text = element.findtext(f"{{{ns}}}Limit")
        limit = min(int(limit_text), self.max_limit) if limit_text and int(limit_text) > 0 else self.max_limit
        start_text = element.findtext(f"{{{ns}}}StartReference")
        try:
            start = int(start_text) if start_text else 0
        except ValueError:
            raise SoapFault(400, "env:Sender", "ter:InvalidArgVal/ter:InvalidStartReference",
                            "StartReference is not valid") from None  # fmt: skip
        end = start + limit
        return items[start:end], (str(end) if end < len(items) else None)

    def _too_many(self, tokens: list[str]) -> None:
        if len(tokens) > self.max_limit:
            raise SoapFault(400, "env:Sender", "ter:InvalidArgs/ter:TooManyItems", "Too many tokens requested")

    @staticmethod
    def _fault(fault: SoapFault) -> str:
        # Subcodes nest: "ter:InvalidArgVal/ter:NotFound" becomes Subcode/Value + Subcode/Subcode/Value.
        subcode = ""
        for value in reversed(fault.subcode.split("/") if fault.subcode else []):
            subcode = f"<env:Subcode><env:Value>{value}</env:Value>{subcode}</env:Subcode>"
        detail = f"<env:Detail>{fault.detail}</env:Detail>" if fault.detail else ""
        return (
            f"<env:Fault><env:Code><env:Value>{fault.code}</env:Value>{subcode}</env:Code>"
            f'<env:Reason><env:Text xml:lang="en">{escape(fault.reason)}</env:Text></env:Reason>{detail}</env:Fault>'
        )

    @staticmethod
    def _envelope(inner: str) -> str:
        declarations = " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NAMESPACES.items())
        head = f'<?xml version="1.0" encoding="UTF-8"?>\n<env:Envelope {declarations}>'
        return f"{head}<env:Body>{inner}</env:Body></env:Envelope>"


# operation: (capability needed, modes that refuse it, DoorMode after, LockPhysicalState after)
_DOOR_COMMANDS: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    "LockDoor": ("Lock", ("LockedDown", "LockedOpen"), "Locked", "Locked"),
    "UnlockDoor": ("Unlock", ("LockedDown", "LockedOpen"), "Unlocked", "Unlocked"),
    "AccessDoor": ("Access", ("LockedDown", "LockedOpen"), "Accessed", "Unlocked"),
    "LockDownDoor": ("LockDown", ("LockedOpen",), "LockedDown", "Locked"),
    "LockDownReleaseDoor": ("LockDown", (), "Locked", "Locked"),
    "LockOpenDoor": ("LockOpen", ("LockedDown",), "LockedOpen", "Unlocked"),
    "LockOpenReleaseDoor": ("LockOpen", (), "Locked", "Locked"),
    "BlockDoor": ("Block", (), "Blocked", "Locked"),
    "DoubleLockDoor": ("DoubleLock", (), "DoubleLocked", "Locked"),
}
