"""The OSDP access-control adapter: campusguard as the Control Panel of an OSDP bus.

Doors are driven through their PD's strike output: **locked = output off (strike de-energised)**,
unlocked = output on. Lockdown is "output off, abort any timed release, reader LED red, buzzer";
nothing else is touched, so request-to-exit buttons and panic hardware, which release the door
mechanically or through their own circuit, keep working: a lockdown keeps people out, it never
keeps anyone in. Who may do what is decided by the core before a command gets here.

Card reads are credential presentations. campusguard holds no credential list and makes no access
decision, so the door stays locked: each read is published as ``access_denied`` with an opaque,
keyed holder id (and, unless ``report_card_numbers = false``, the decoded facility/card numbers in
the detail). Card numbers never reach a log.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from campusguard.sdk import (
    DOOR_EVENTS,
    AccessControl,
    AuthFailed,
    ComponentContext,
    ConfigError,
    DoorAction,
    DoorCommand,
    DoorEvent,
    DoorEventKind,
    Incident,
    IncidentKind,
    NotReady,
    Severity,
)

from . import wiegand
from .channel import SerialTransport, TcpTransport, Transport
from .config import OsdpConfig, Peripheral, SerialBus

if TYPE_CHECKING:
    from .panel import Capabilities, CardRead, Panel, PanelEvent, PdIdentity, PdOnline, StatusReport

# OSDP constants (osdp_OUT control codes, osdp_LED / osdp_BUZ values, osdp.Command ids), spelled out
# so that this module needs no libosdp import until start().
CMD_OUTPUT, CMD_LED, CMD_BUZZER = 1, 2, 3
OUT_OFF_ABORT_TIMED = 1  # permanent OFF, abort any timed operation: the lock command
OUT_ON_ABORT_TIMED = 2  # permanent ON, abort any timed operation: the unlock command
OUT_TEMPORARY_ON = 5  # temporary ON for timer_count x 100 ms, then back to the permanent state
LED_SET_PERMANENT = 1
TONE_OFF, TONE_DEFAULT = 1, 2
LED_COLORS = {"off": 0, "red": 1, "green": 2, "amber": 3, "blue": 4, "magenta": 5, "cyan": 6, "white": 7}
STATUS_INPUT, STATUS_OUTPUT, STATUS_LOCAL = 0, 1, 2


@dataclass
class _Door:
    """What the adapter knows about one door; changed on the event loop only."""

    peripheral: Peripheral
    strike: str = "unknown"  # "locked" | "unlocked" | "unknown": the last state the PD acknowledged
    lockdown: bool = False
    online: bool = False
    secure: bool = False
    reason: str = "not connected yet"
    identity: PdIdentity | None = None
    capabilities: Capabilities | None = None
    outage_reported: bool = False
    relock_needed: bool = False  # a momentary release whose relock could not be sent
    tamper: bool = False
    inputs: bytes | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @property
    def door_id(self) -> str:
        return self.peripheral.door_id

    @property
    def address(self) -> int:
        return self.peripheral.address

    @property
    def state(self) -> str:
        if self.lockdown:
            return "lockdown" if self.strike != "unlocked" else "unlocked (lockdown in effect)"
        return self.strike


class OsdpAccessControl(AccessControl):
    """Doors on one OSDP bus (RS-485 serial port or serial-device server), Secure Channel by default."""

    kind = "osdp"
    Config = OsdpConfig

    def __init__(self, name: str, config: BaseModel, context: ComponentContext) -> None:
        super().__init__(name, config, context)
        if not isinstance(config, OsdpConfig):
            raise TypeError("OsdpAccessControl takes an OsdpConfig")
        self.cfg: OsdpConfig = config
        self._panel: Panel | None = None
        self._generation = 0
        self._doors: dict[str, _Door] = {}
        self._by_address: dict[int, _Door] = {}
        self._reset_doors()
        self._relocks: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._online_changed = asyncio.Event()
        self._holder_key = b""

    # -- lifecycle ----------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._panel is not None:
            return
        from .panel import Panel, PdSpec  # libosdp loads here, not when plugins are listed

        cfg = self.cfg
        self._holder_key = await asyncio.to_thread(self._load_holder_key)
        self._reset_doors()
        transport = self._transport()
        try:
            await asyncio.to_thread(transport.open)
        except OSError as exc:
            raise NotReady(f"cannot open the OSDP bus ({transport.describe()}): {transport.error or exc}") from None

        loop = asyncio.get_running_loop()
        self._generation += 1
        generation = self._generation

        def post(event: PanelEvent) -> None:  # worker thread -> event loop
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
                loop.call_soon_threadsafe(self._on_panel_event, generation, event)

        panel = Panel(
            transport,
            [PdSpec(p.address, p.label, p.key(), not p.allow_insecure) for p in cfg.peripherals],
            post=post,
            name=self.name,
            refresh_interval=cfg.refresh_interval,
            retry_initial=cfg.retry_initial,
            retry_max=cfg.retry_max,
            log_level=cfg.library_log_level,
        )
        try:
            await asyncio.to_thread(panel.start)
        except BaseException:
            transport.close()
            raise
        self._panel = panel
        try:
            await self._wait_online(cfg.startup_wait)
        except BaseException:  # cancelled (the core's start timeout): leave nothing running
            await self._stop_panel()
            raise

        offline = [d for d in self._doors.values() if not d.online]
        if offline and len(offline) == len(self._doors):
            reasons = "; ".join(f"PD {d.address} ({d.door_id}): {panel.state(d.address).reason}" for d in offline)
            await self._stop_panel()
            if all(panel.state(d.address).identity.answered for d in offline):
                raise AuthFailed(f"no OSDP PD came online on {transport.describe()}: {reasons}")
            raise NotReady(f"no OSDP PD came online on {transport.describe()}: {reasons}")
        for door in offline:  # the bus runs with the PDs that answered; the others are reported
            self._device_offline(door, panel.state(door.address).reason)

    async def stop(self) -> None:
        # A pending momentary-access relock is sent now: stopping never leaves a door released.
        relocks = [door_id for door_id, task in self._relocks.items() if not task.done()]
        for task in self._relocks.values():
            task.cancel()
        self._relocks.clear()
        if self._panel is not None:
            for door_id in relocks:
                door = self._doors[door_id]
                try:
                    await self._send(door, [self._output(door, OUT_OFF_ABORT_TIMED)], what="relock on stop")
                    door.strike = "locked"
                except (NotReady, ConfigError) as exc:
                    self.log.error(
                        "door %s: relock on stop failed (the PD's own timer still relocks): %s", door_id, exc
                    )
        await self._stop_panel()
        tasks = list(self._tasks)
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=2.0)  # incidents being stored: let them finish
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        self._tasks.clear()

    async def _stop_panel(self) -> None:
        panel, self._panel = self._panel, None
        self._generation += 1  # events still in flight from the old panel are ignored
        if panel is not None:
            await asyncio.to_thread(panel.stop)
        for door in self._doors.values():
            door.online = False

    async def _wait_online(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not all(d.online for d in self._doors.values()):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._online_changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._online_changed.wait(), remaining)

    def _reset_doors(self) -> None:
        self._doors = {p.door_id: _Door(p) for p in self.cfg.peripherals}
        self._by_address = {d.address: d for d in self._doors.values()}

    def _transport(self) -> Transport:
        bus = self.cfg.transport
        if isinstance(bus, SerialBus):
            return SerialTransport(self.context.resolve(bus.serial), bus.baud)
        return TcpTransport(bus.host, bus.port, connect_timeout=bus.connect_timeout)

    def _load_holder_key(self) -> bytes:
        """The site key of the opaque holder ids: configured, or made once and kept in the data folder."""
        if self.cfg.holder_id_key is not None:
            return self.cfg.holder_id_key.get_secret_value().encode()
        path = self.context.data_dir / "holder-id.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".holder-id.key.{os.getpid()}")
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
            with contextlib.suppress(FileExistsError):  # another process made it first: theirs wins
                os.link(draft, path)  # appears complete or not at all
            draft.unlink()
        try:
            key = bytes.fromhex(path.read_text().strip())
        except ValueError:
            key = b""
        if len(key) < 16:
            raise ConfigError(f"{path} does not hold a holder-id key (64 hex digits); remove it to make a new one")
        return key

    # -- commands -----------------------------------------------------------------------------------

    def _door(self, door_id: str) -> _Door:
        door = self._doors.get(door_id)
        if door is None:
            known = ", ".join(sorted(self._doors))
            raise ValueError(f"unknown door {door_id!r}: OSDP adapter {self.name!r} controls {known}")
        return door

    async def execute(self, command: DoorCommand) -> str:
        door = self._door(command.door_id)
        if self._panel is None:
            raise NotReady(f"door {door.door_id}: the OSDP adapter {self.name!r} is not running")
        if not door.online:
            raise NotReady(f"door {door.door_id}: OSDP PD {door.address} is offline ({door.reason}); nothing was done")
        if command.action is DoorAction.QUERY:
            return self._describe(door)
        suffix = " (exercise)" if command.exercise else ""
        async with door.lock:
            if command.dry_run:
                return f"dry run, nothing sent: would {command.action.value} {door.door_id} ({self._describe(door)})"
            result = await self._carry_out(door, command.action)
        self.log.info(
            "door %s: %s by %s: %s%s", door.door_id, command.action.value, command.requested_by, result, suffix
        )
        return result + suffix

    async def _carry_out(self, door: _Door, action: DoorAction) -> str:
        # A pending momentary-access relock is cancelled only once a new strike state is acknowledged
        # (door.lock is held, so the relock cannot run in between); if the command fails, it stays.
        number = door.peripheral.strike_output
        if action is DoorAction.LOCK:
            await self._send(door, [self._output(door, OUT_OFF_ABORT_TIMED)], what="lock")
            self._cancel_relock(door)
            door.strike = "locked"
            return f"locked (strike output {number} off)"
        if action is DoorAction.UNLOCK:
            await self._send(door, [self._output(door, OUT_ON_ABORT_TIMED)], what="unlock")
            self._cancel_relock(door)
            door.strike = "unlocked"
            return f"unlocked (strike output {number} on)" + (" while lockdown is in effect" if door.lockdown else "")
        if action is DoorAction.MOMENTARY_ACCESS:
            return await self._momentary(door)
        if action is DoorAction.LOCKDOWN:
            extras = self._indicators(door, color="red", tone=self.cfg.lockdown_buzzer)
            failed = await self._send(door, [self._output(door, OUT_OFF_ABORT_TIMED)], optional=extras, what="lockdown")
            self._cancel_relock(door)
            door.strike = "locked"
            door.lockdown = True
            return f"locked down (strike output {number} off{self._extras_text(extras, failed, 'LED red', 'buzzer')})"
        if action is DoorAction.LOCKDOWN_RELEASE:
            # The strike is left as it is: releasing a lockdown never unlocks a door by itself.
            extras = self._indicators(door, color=self.cfg.idle_led, tone=False, silence=True)
            failed = await self._send(door, [], optional=extras, what="lockdown release")
            door.lockdown = False
            led = f"LED {self.cfg.idle_led}"
            return f"lockdown released, door still {door.strike}{self._extras_text(extras, failed, led, 'buzzer off')}"
        raise ValueError(f"the OSDP adapter does not handle {action.value!r}")

    async def _momentary(self, door: _Door) -> str:
        peripheral = door.peripheral
        if door.strike == "unlocked" and not self._relock_pending(door):  # held open by an unlock
            return f"already unlocked (strike output {peripheral.strike_output} on); nothing to release"
        caps = door.capabilities
        pd_timer = caps is not None and caps.output_level >= 2  # OSDP compliance 2+: timed output control
        seconds = peripheral.strike_seconds
        if pd_timer:
            # The PD times the release itself, so the door relocks even if campusguard stops answering.
            first = self._output(door, OUT_TEMPORARY_ON, timer=max(1, round(seconds * 10)))
        else:
            first = self._output(door, OUT_ON_ABORT_TIMED)
        await self._send(door, [first], what="momentary access")
        self._cancel_relock(door)  # a release during a release starts the time again
        door.strike = "unlocked"
        task = asyncio.create_task(self._relock_after(door, seconds), name=f"osdp-relock:{door.door_id}")
        self._relocks[door.door_id] = task
        timer = "PD-timed" if pd_timer else "timed by campusguard"
        return f"released for {seconds:g} s (strike output {peripheral.strike_output} on, {timer}), then relocks"

    async def _relock_after(self, door: _Door, seconds: float) -> None:
        await asyncio.sleep(seconds)
        async with door.lock:
            try:
                await self._send(door, [self._output(door, OUT_OFF_ABORT_TIMED)], what="relock")
            except (NotReady, ConfigError) as exc:
                self.log.error("door %s: relock after momentary access failed: %s", door.door_id, exc)
                door.strike = "unknown"  # a PD-timed release has relocked by itself; we cannot confirm it
                door.relock_needed = True  # sent when the PD is back
                return
            door.strike = "locked"
            self._relocks.pop(door.door_id, None)

    def _relock_pending(self, door: _Door) -> bool:
        task = self._relocks.get(door.door_id)
        return task is not None and not task.done()

    def _cancel_relock(self, door: _Door) -> None:
        task = self._relocks.pop(door.door_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _output(self, door: _Door, code: int, timer: int = 0) -> dict[str, Any]:
        number = door.peripheral.strike_output
        caps = door.capabilities
        if caps is not None and number >= caps.outputs:
            # Sending it would make the PD NAK, and libosdp then drops the PD for minutes.
            raise ConfigError(
                f"door {door.door_id}: strike_output {number} does not exist on OSDP PD {door.address}, "
                f"which reports {caps.outputs} output(s)"
            )
        return {"command": CMD_OUTPUT, "output_no": number, "control_code": code, "timer_count": min(timer, 255)}

    def _indicators(self, door: _Door, *, color: str, tone: bool, silence: bool = False) -> list[dict[str, Any]]:
        """LED and buzzer commands, only for what the PD declared (an unsupported command is NAKed)."""
        caps = door.capabilities
        reader = door.peripheral.reader
        commands: list[dict[str, Any]] = []
        if caps is not None and caps.leds > 0:
            rgb = LED_COLORS[color]
            commands.append(
                {
                    "command": CMD_LED,
                    "reader": reader,
                    "led_number": 0,
                    "control_code": LED_SET_PERMANENT,
                    "on_count": 10,
                    "off_count": 0,  # no off phase: steady
                    "on_color": rgb,
                    "off_color": rgb,
                    "temporary": False,
                }
            )
        if caps is not None and caps.buzzer and (tone or silence):
            on, off, repeat = (5, 5, 3) if tone else (0, 0, 0)
            commands.append(
                {
                    "command": CMD_BUZZER,
                    "reader": reader,
                    "control_code": TONE_DEFAULT if tone else TONE_OFF,
                    "on_count": on,
                    "off_count": off,
                    "rep_count": repeat,
                }
            )
        return commands

    @staticmethod
    def _extras_text(extras: list[dict[str, Any]], failed: list[str], led: str, buzzer: str) -> str:
        text = "".join(f", {led if command['command'] == CMD_LED else buzzer}" for command in extras)
        if failed:
            text += f"; not confirmed: {'; '.join(failed)}"
        return text

    async def _send(
        self,
        door: _Door,
        required: list[dict[str, Any]],
        *,
        optional: Sequence[dict[str, Any]] = (),
        what: str,
    ) -> list[str]:
        """Send ``required`` then ``optional`` commands; wait for the PD's acknowledgements.

        Raises ``NotReady`` unless every required command was acknowledged; returns the failures of
        optional ones (indicators), which do not make the action fail.
        """
        panel = self._panel
        if panel is None:
            raise NotReady(f"door {door.door_id}: the OSDP adapter is not running; {what} not sent")
        from .panel import CommandFailed

        futures = panel.submit(door.address, [*required, *optional])
        if not futures:
            return []
        waits = [asyncio.wrap_future(f) for f in futures]
        try:
            _, pending = await asyncio.wait(waits, timeout=self.cfg.command_timeout)
        except asyncio.CancelledError:  # the caller gave up: what is still queued must not run later
            for waiter in waits:
                waiter.cancel()
            panel.flush(door.address)
            raise
        if pending:
            for waiter in pending:
                waiter.cancel()
            panel.flush(door.address)  # a late command must never run: drop what is still queued
        problems: list[str] = []
        for index, waiter in enumerate(waits):
            if waiter in pending:
                problem = f"no acknowledgement within {self.cfg.command_timeout:g} s"
            else:
                exc = waiter.exception()
                problem = "" if exc is None else str(exc) if isinstance(exc, CommandFailed) else repr(exc)
            if problem and index < len(required):
                raise NotReady(
                    f"door {door.door_id}: {what} not confirmed by OSDP PD {door.address}: {problem}; "
                    "do not assume it happened"
                )
            if problem:
                name = "LED" if optional[index - len(required)]["command"] == CMD_LED else "buzzer"
                problems.append(f"{name}: {problem}")
                self.log.warning("door %s: %s %s not confirmed: %s", door.door_id, what, name, problem)
        return problems

    def _describe(self, door: _Door) -> str:
        link = "secure channel" if door.secure else "NO secure channel"
        egress = ", egress door" if door.peripheral.egress else ""
        state = door.state if door.strike != "unknown" or door.lockdown else "state unknown (not commanded yet)"
        tamper = ", reader TAMPER" if door.tamper else ""
        return f"{state}; OSDP PD {door.address} online, {link}{egress}{tamper}"

    # -- events from the panel (event loop thread) --------------------------------------------------

    def _on_panel_event(self, generation: int, event: PanelEvent) -> None:
        if generation != self._generation:
            return  # from a panel that has been stopped since
        from .panel import CardRead, PdOffline, PdOnline, StatusReport

        door = self._by_address.get(event.address)
        if door is None:
            return
        if isinstance(event, PdOnline):
            self._device_online(door, event)
        elif isinstance(event, PdOffline):
            self._device_offline(door, event.reason)
        elif isinstance(event, CardRead):
            self._card_read(door, event)
        elif isinstance(event, StatusReport):
            self._status(door, event)

    def _publish(self, door: _Door, kind: DoorEventKind, detail: str, holder: str | None = None) -> None:
        event = DoorEvent(
            door_id=door.door_id, kind=kind, source=self.name, credential_holder=holder, state=door.state, detail=detail
        )
        self.context.bus.publish(DOOR_EVENTS, event)

    def _device_online(self, door: _Door, event: PdOnline) -> None:
        door.online, door.secure, door.reason = True, event.secure, ""
        door.identity, door.capabilities = event.identity, event.capabilities
        door.outage_reported = False
        self._online_changed.set()
        if door.lockdown or door.relock_needed:
            self._spawn(self._restore(door), f"osdp-restore:{door.door_id}")
        link = "secure channel" if event.secure else "WITHOUT secure channel (allow_insecure)"
        self.log.info("door %s: OSDP PD %s online, %s; %s", door.door_id, door.address, link, event.identity.describe())
        number = door.peripheral.strike_output
        if number >= event.capabilities.outputs:
            self.log.error(
                "door %s: strike_output %s does not exist on OSDP PD %s (%s outputs): door commands will be refused",
                door.door_id,
                number,
                door.address,
                event.capabilities.outputs,
            )
        self._publish(door, DoorEventKind.DEVICE_ONLINE, f"OSDP PD {door.address} online, {link}")

    async def _restore(self, door: _Door) -> None:
        """A PD back from an outage (a reboot, maybe): a lockdown in effect, or a missed relock, is sent again."""
        async with door.lock:
            if not door.online or not (door.lockdown or door.relock_needed):
                return
            what = "lockdown restore" if door.lockdown else "relock"
            extras = self._indicators(door, color="red", tone=False) if door.lockdown else []
            try:
                await self._send(door, [self._output(door, OUT_OFF_ABORT_TIMED)], optional=extras, what=what)
            except (NotReady, ConfigError) as exc:
                self.log.error("door %s: %s after reconnecting failed: %s", door.door_id, what, exc)
                return
            door.strike, door.relock_needed = "locked", False
            self.log.info("door %s: %s sent after the PD reconnected", door.door_id, what)

    def _device_offline(self, door: _Door, reason: str) -> None:
        door.online, door.secure, door.reason = False, False, reason
        if not door.lockdown:  # a lockdown is restored on reconnection; any other state is unknown after an outage
            door.strike = "unknown"
        self.log.warning("door %s: OSDP PD %s offline: %s", door.door_id, door.address, reason)
        self._publish(door, DoorEventKind.DEVICE_OFFLINE, f"OSDP PD {door.address} offline: {reason}")
        if door.outage_reported:
            return
        door.outage_reported = True  # one incident per outage; coming back online re-arms it
        incident = Incident(
            kind=IncidentKind.DEVICE_OFFLINE,
            severity=Severity.MODERATE,
            title=f"Door {door.door_id}: OSDP reader/controller offline (PD {door.address})",
            source=self.name,
        )
        self._spawn(self._raise(incident), f"osdp-incident:{door.door_id}")

    async def _raise(self, incident: Incident) -> None:
        try:
            await self.context.core.raise_incident(incident)
        except Exception:
            self.log.exception("could not raise the device_offline incident %s", incident.id)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _card_read(self, door: _Door, event: CardRead) -> None:
        credential = wiegand.decode(event.card_format, event.data, event.bits)
        holder = wiegand.holder_id(credential, self._holder_key)
        detail = (
            f"credential presented at reader {event.reader}: "
            f"{credential.describe(numbers=self.cfg.report_card_numbers)}; "
            "no access decision is made by campusguard, the door stays locked"
        )
        self.log.info("door %s: credential %s presented (%s)", door.door_id, holder, credential.format)
        self._publish(door, DoorEventKind.ACCESS_DENIED, detail, holder)

    def _status(self, door: _Door, event: StatusReport) -> None:
        report: bytes = event.report
        if event.report_type == STATUS_LOCAL and report:
            tamper = bool(report[0])
            power = len(report) > 1 and bool(report[1])
            if tamper and not door.tamper:
                self._publish(door, DoorEventKind.READER_TAMPER, f"OSDP PD {door.address} reports tamper")
            elif not tamper and door.tamper:
                self._publish(door, DoorEventKind.STATE_CHANGED, f"OSDP PD {door.address}: tamper cleared")
            door.tamper = tamper
            if power:
                self._publish(door, DoorEventKind.STATE_CHANGED, f"OSDP PD {door.address} reports a power failure")
        elif event.report_type == STATUS_OUTPUT and len(report) > door.peripheral.strike_output:
            strike = "unlocked" if report[door.peripheral.strike_output] else "locked"
            if strike != door.strike:
                door.strike = strike
                self._publish(door, DoorEventKind.STATE_CHANGED, f"strike output reported {strike} by the PD")
        elif event.report_type == STATUS_INPUT and report != door.inputs:
            door.inputs = report
            states = ",".join(str(int(bool(b))) for b in report)
            self._publish(door, DoorEventKind.STATE_CHANGED, f"OSDP PD {door.address} inputs: {states}")
