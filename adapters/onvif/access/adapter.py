"""``type = "onvif_access"``: doors of an ONVIF Profile C door controller.

On start it logs in (WS-Security, the controller's clock checked and compensated like a camera's),
finds the DoorControl and AccessControl services through GetServices, lists the doors
(GetDoorInfoList) and access points (GetAccessPointInfoList), and subscribes to the controller's
events (PullPoint) so that forced and held doors, tamper, state changes and badge decisions reach
the bus as :class:`DoorEvent` messages.

Commands: lock → LockDoor, unlock → UnlockDoor, momentary_access → AccessDoor, lockdown →
LockDownDoor, lockdown_release → LockDownReleaseDoor, query → GetDoorState. After each command
the door's state is read back and returned in words; a state that contradicts the command is an
error, and so is a SOAP Fault (with its code and reason): a door is never reported as changed
when the controller did not change it. Who may do what has been decided by the core before a
command gets here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from campusguard.sdk import (
    DOOR_EVENTS,
    AccessControl,
    AuthFailed,
    CameraEvent,
    CampusguardError,
    ComponentContext,
    DoorAction,
    DoorCommand,
    DoorEvent,
    DoorEventKind,
    NotReady,
    cancel_and_wait,
)

from .doors import (
    MODE_WORDS,
    OPERATIONS,
    AccessPointInfo,
    DoorInfo,
    DoorState,
    Operation,
    controller_errors,
    controller_text,
    door_state,
    list_access_points,
    list_doors,
    send,
    words,
)
from .errors import DoorCommandNotEffective
from .events import DoorEventMapper
from .services import ACCESSCONTROL_NS, DOORCONTROL, DOORCONTROL_NS

if TYPE_CHECKING:
    from ..client import OnvifSession, OnvifTarget
    from ..events import PullPointSubscriber

EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
#: how often the event subscription's health is looked at (device_offline / device_online)
WATCH_INTERVAL = 0.5
#: an unknown door id re-reads the controller's door list at most this often (default mapping only)
RELIST_INTERVAL = 10.0


class OnvifAccessConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field(description="the controller's address")
    port: int = Field(default=80, ge=1, le=65535, description="its ONVIF (HTTP) port")
    username: str | None = None
    password: SecretStr | None = Field(default=None, description='use { env = "NAME" }')
    timeout: float = Field(default=5.0, gt=0, description="seconds per ONVIF request")
    compensate_clock: bool = Field(default=True, description="sign requests with the controller's clock if it is off")
    doors: dict[str, str] = Field(
        default_factory=dict,
        description="campusguard door id -> the controller's DoorToken; empty: the controller's tokens are the ids",
    )
    events: bool = Field(default=True, description="subscribe to door and access-point events (PullPoint)")
    access_time: float | None = Field(
        default=None, gt=0, le=3600, description="seconds a momentary access lasts; default: the door's own setting"
    )
    holder_id_key: SecretStr | None = Field(
        default=None, description="key of the opaque credential-holder ids; default: one made and kept per adapter"
    )

    @field_validator("doors")
    @classmethod
    def _tokens_are_distinct(cls, doors: dict[str, str]) -> dict[str, str]:
        seen: dict[str, str] = {}
        for door_id, token in doors.items():
            if not door_id.strip() or not token.strip():
                raise ValueError("door ids and DoorTokens must not be empty")
            if len(token) > 64:
                raise ValueError(f"DoorToken {token!r} of door {door_id!r} is longer than ONVIF's 64 characters")
            if token in seen:
                raise ValueError(f"doors {seen[token]!r} and {door_id!r} both map to DoorToken {token!r}")
            seen[token] = door_id
        return doors


class OnvifAccessControl(AccessControl):
    """Doors behind one ONVIF Profile C controller (DoorControl + AccessControl + events)."""

    kind = "onvif_access"
    Config = OnvifAccessConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        assert isinstance(config, OnvifAccessConfig)
        self.cfg = config
        self.device_doors: dict[str, DoorInfo] = {}  # DoorToken → what the controller lists
        self.access_points: dict[str, AccessPointInfo] = {}
        self._session: OnvifSession | None = None
        self._mapper = DoorEventMapper(name, b"")
        self._door_locks: dict[str, asyncio.Lock] = {}
        self._listed_at = 0.0
        self._subscriber: PullPointSubscriber | None = None
        self._events_task: asyncio.Task[None] | None = None
        self._watch_task: asyncio.Task[None] | None = None
        self._online: bool | None = None

    # -- life cycle ---------------------------------------------------------------------------------

    def _target(self) -> OnvifTarget:
        from ..client import OnvifTarget

        c = self.cfg
        return OnvifTarget(
            camera_id=self.name, host=c.host, port=c.port, username=c.username,
            password=c.password.get_secret_value() if c.password else None,
            timeout=c.timeout, compensate_clock=c.compensate_clock,
        )  # fmt: skip

    async def start(self) -> None:
        from ..client import connect
        from .services import register_services

        if self._session is not None:  # started twice: begin afresh rather than leak a session
            await self.stop()
        register_services()
        if not self._mapper.holder_key:
            self._mapper.holder_key = await asyncio.to_thread(self._load_holder_key)
        # NotReady (unreachable, booting) and AuthFailed (credentials, clock) reach the supervisor.
        async with controller_errors(self.name):
            session = await connect(self._target())
        try:
            await self._set_up(session)
        except BaseException:
            await session.close()
            raise
        self._session = session
        for warning in session.warnings:
            self.log.warning("%s", controller_text(warning, self.name))
        missing = sorted(token for token in self.cfg.doors.values() if token not in self.device_doors)
        if missing:
            self.log.error(
                "ONVIF door controller %r does not list DoorToken(s) %s (it lists %s); commands for them "
                "will be sent anyway and the controller's answer reported",
                self.name, ", ".join(missing), ", ".join(sorted(self.device_doors)) or "none",
            )  # fmt: skip
        listed = ", ".join(f"{token} ({door.name})" for token, door in sorted(self.device_doors.items()))
        self.log.info(
            "ONVIF door controller %r at %s:%s: doors %s; %d access point(s)",
            self.name, self.cfg.host, self.cfg.port, listed or "none", len(self.access_points),
        )  # fmt: skip
        if self.cfg.events:
            if session.offers(EVENTS_NS):
                self._start_events()
            else:
                self.log.warning("ONVIF door controller %r offers no event service: no door events", self.name)

    async def _set_up(self, session: OnvifSession) -> None:
        from ..errors import Unsupported

        if not session.offers(DOORCONTROL_NS):
            raise Unsupported(
                f"ONVIF device {self.name!r} at {self.cfg.host}:{self.cfg.port} offers no DoorControl service "
                "(GetServices lists none); is it a Profile C door controller?"
            )
        # Created once here: commands for many doors at once then share it instead of racing to create it.
        async with controller_errors(self.name):
            await session.service(DOORCONTROL)
        await self._list(session)

    async def _list(self, session: OnvifSession) -> None:
        self.device_doors = {door.token: door for door in await list_doors(session)}
        if session.offers(ACCESSCONTROL_NS):
            try:
                self.access_points = {point.token: point for point in await list_access_points(session)}
            except (NotReady, AuthFailed):
                raise
            except CampusguardError as exc:
                self.log.warning("ONVIF door controller %r: no access points: %s", self.name, exc)
        self._listed_at = asyncio.get_running_loop().time()
        self._mapper.update({token: door_id for door_id, token in self.door_tokens().items()}, self.access_points)

    def _start_events(self) -> None:
        from ..events import PullPointSubscriber

        class Subscriber(PullPointSubscriber):
            @property
            def name(self) -> str:
                return f"door controller '{self.target.camera_id}' events"

        self._subscriber = Subscriber(self._target(), self._on_notification, logger=self.log)
        self._events_task = self._subscriber.start()
        self._watch_task = asyncio.create_task(self._watch(), name=f"onvif-access-watch:{self.name}")

    async def stop(self) -> None:
        watch, self._watch_task = self._watch_task, None
        await cancel_and_wait(watch)
        subscriber, self._subscriber, self._events_task = self._subscriber, None, None
        if subscriber is not None:
            await subscriber.stop()
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        self._online = None

    def _load_holder_key(self) -> bytes:
        """The key of the opaque holder ids: configured, or made once and kept in the data folder."""
        if self.cfg.holder_id_key is not None:
            return self.cfg.holder_id_key.get_secret_value().encode()
        path = self.context.data_dir / "holder-id.key"
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return bytes.fromhex(path.read_text().strip())
        key = secrets.token_bytes(32)
        with os.fdopen(fd, "w") as file:
            file.write(key.hex())
        return key

    # -- doors ----------------------------------------------------------------------------------------

    def door_tokens(self) -> dict[str, str]:
        """campusguard door id → DoorToken: the configured mapping, or the controller's own tokens."""
        return dict(self.cfg.doors) if self.cfg.doors else {token: token for token in self.device_doors}

    async def _token(self, door_id: str) -> str:
        token = self.door_tokens().get(door_id)
        session = self._session
        stale = asyncio.get_running_loop().time() - self._listed_at >= RELIST_INTERVAL
        if token is None and not self.cfg.doors and session is not None and stale:
            try:  # a door added on the controller since start
                await self._list(session)
            except CampusguardError as exc:
                self.log.debug("ONVIF door controller %r: could not re-read its doors: %s", self.name, exc)
            token = self.door_tokens().get(door_id)
        if token is None:
            known = ", ".join(sorted(self.door_tokens())) or "none (not connected yet)"
            raise LookupError(f"unknown door {door_id!r}: ONVIF door controller {self.name!r} has doors {known}")
        return token

    def _what(self, door_id: str, token: str) -> str:
        info = self.device_doors.get(token)
        about = [info.name] if info is not None and info.name != door_id else []
        if token != door_id:
            about.append(f"token {token}")
        return f"door {door_id!r}" + (f" ({', '.join(about)})" if about else "")

    async def execute(self, command: DoorCommand) -> str:
        from ..errors import Unsupported

        token = await self._token(command.door_id)
        what = self._what(command.door_id, token)
        operation = OPERATIONS.get(command.action)
        if command.dry_run:
            sent = operation.name if operation is not None else "GetDoorState"
            return f"dry run, nothing sent: would send {sent} for {what}"
        session = self._session
        if session is None:
            raise NotReady(f"ONVIF door controller {self.name!r} is not connected; nothing was sent for {what}")
        if command.action is DoorAction.QUERY:
            return f"{what}: {(await door_state(session, token, what)).describe()}"
        if operation is None:
            raise ValueError(f"the ONVIF access-control adapter does not handle {command.action.value!r}")
        info = self.device_doors.get(token)
        if info is not None and info.refuses(operation.capability):
            raise Unsupported(
                f"cannot {operation.verb} {what}: ONVIF door controller {self.name!r} reports no "
                f"{operation.capability} capability for it; nothing was sent"
            )
        params: dict[str, Any] = {"Token": token}
        if command.action is DoorAction.MOMENTARY_ACCESS and self.cfg.access_time is not None:
            if info is None or info.capabilities.get("AccessTimingOverride") is not False:
                params["AccessTime"] = timedelta(seconds=self.cfg.access_time)
        lock = self._door_locks.setdefault(token, asyncio.Lock())
        async with lock:
            await send(session, operation.name, params, what)  # a Fault raises DoorCommandRefused
            try:
                state = await door_state(session, token, what)
            except CampusguardError as exc:
                result = f"{operation.name} accepted for {what}; its state could not be read back: {exc}"
                self.log.warning("%s", result)
                return result + (" (exercise)" if command.exercise else "")
        self._verify(operation, state, what)
        result = f"{operation.name} accepted; {what} is now {state.describe()}"
        self.log.info(
            "door %s: %s by %s: %s%s", command.door_id, command.action.value, command.requested_by, result,
            " (exercise)" if command.exercise else "",
        )  # fmt: skip
        return result + (" (exercise)" if command.exercise else "")

    def _verify(self, operation: Operation, state: DoorState, what: str) -> None:
        mode = state.mode
        if mode is None or mode == "Unknown":
            return  # the controller does not say: its acceptance is all there is to go on
        if mode in operation.refused or (operation.expected is not None and mode not in operation.expected):
            raise DoorCommandNotEffective(
                f"ONVIF door controller {self.name!r} accepted {operation.name} but reports {what} "
                f"{words(MODE_WORDS, mode)} ({state.describe()}): it did not {operation.verb} the door"
            )

    # -- events ---------------------------------------------------------------------------------------

    async def _on_notification(self, event: CameraEvent) -> None:
        door_event = self._mapper.map(event)
        if door_event is None:
            return
        self._publish(door_event)

    def _publish(self, event: DoorEvent) -> None:
        self.context.core.bus.publish(DOOR_EVENTS, event)
        holder = f" by {event.credential_holder}" if event.credential_holder else ""
        self.log.info("door %s: %s%s: %s", event.door_id, event.kind.value, holder, event.detail)

    async def _watch(self) -> None:
        """``device_offline`` when the event subscription breaks, ``device_online`` when it is back."""
        subscriber, task = self._subscriber, self._events_task
        assert subscriber is not None and task is not None
        errors = subscriber.stats.errors
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            stats = subscriber.stats
            if stats.subscribed and self._online is not True:
                if self._online is False:
                    self._each_door(DoorEventKind.DEVICE_ONLINE, "door controller reachable again, events resumed")
                self._online = True
            elif not stats.subscribed and stats.errors > errors and self._online is not False:
                reason = controller_text(stats.last_error or "the event subscription broke", self.name)
                self._each_door(DoorEventKind.DEVICE_OFFLINE, f"door controller unreachable: {reason}")
                self._online = False
            errors = stats.errors
            if task.done():
                failure = None if task.cancelled() else task.exception()
                self.log.error("ONVIF door controller %r: door events stopped: %s", self.name, failure)
                return

    def _each_door(self, kind: DoorEventKind, detail: str) -> None:
        for door_id in sorted(self.door_tokens()):
            self._publish(DoorEvent(door_id=door_id, kind=kind, source=self.name, detail=detail))
