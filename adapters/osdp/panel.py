"""The OSDP Control Panel: libosdp's state machine, refreshed in a worker thread of its own.

Everything that touches the libosdp context happens in that one thread: it builds the context,
calls ``refresh()`` every ``refresh_interval`` seconds, submits the commands the event loop queued,
and hands events back through ``post`` (which the adapter points at ``loop.call_soon_threadsafe``).
The event loop never calls libosdp and never waits on a lock held by it.

We drive libosdp's ``osdp_sys.ControlPanel`` (the extension the ``osdp.ControlPanel`` wrapper is
built on) rather than the wrapper, because the wrapper queues a copy of every event in an unbounded
``queue.Queue`` that only ``get_event()`` drains, runs its own non-daemon thread with a fixed 20 ms
sleep, and passes a PD's *index* to event handlers but its *address* to completion handlers. The
public ``osdp`` module still supplies ``Channel``, ``PDInfo`` and every constant.

libosdp behaviour this module works around (libosdp 3.2.9):

* A PD that goes offline, or NAKs a command (an output it does not have, a status report it cannot
  build), is put "offline for 300 seconds". The worker re-enables such a PD itself
  (``disable_pd``, one refresh, ``enable_pd``) with its own backoff, ``retry_initial`` doubling to
  ``retry_max``.
* A silent PD is declared offline only after ~8 s of probing (the OSDP online timeout); a dead
  transport (TCP reset, unplugged adapter) is reported at once.
* ``submit_command`` is accepted only while the PD is online; every accepted command is completed
  exactly once through the completion callback (OK, failed, flushed or aborted).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from queue import Empty, SimpleQueue
from typing import Any

import osdp  # type: ignore[import-untyped]
import osdp_sys  # type: ignore[import-not-found]

from .channel import Transport

log = logging.getLogger(__name__)

LOG_LEVELS: dict[str, int] = {
    "off": osdp.LogLevel.Emergency,
    "error": osdp.LogLevel.Error,
    "warning": osdp.LogLevel.Warning,
    "info": osdp.LogLevel.Info,
}
"""libosdp writes its own log lines to stderr; the level is process-wide. Debug is not offered: it
dumps packets, card data included."""

COMPLETION_NAMES: dict[int, str] = {
    osdp.CompletionStatus.Ok: "ok",
    osdp.CompletionStatus.Failed: "refused by the PD (NAK) or not answered",
    osdp.CompletionStatus.Flushed: "dropped: the PD went offline first",
    osdp.CompletionStatus.Aborted: "aborted: the panel stopped",
}

# -- what the panel tells the adapter -------------------------------------------------------------


@dataclass(frozen=True)
class PdSpec:
    """One peripheral on the bus, as the panel needs it."""

    address: int
    name: str
    scbk: bytes | None
    enforce_secure: bool


@dataclass(frozen=True)
class Capabilities:
    """What a PD said it has (``osdp_PDCAP``): counts, 0 when it did not declare the function."""

    outputs: int = 0
    output_level: int = 0
    leds: int = 0
    buzzer: bool = False
    readers: int = 0


@dataclass(frozen=True)
class PdIdentity:
    """``osdp_PDID``: who made the PD, and its serial number."""

    vendor_code: int = 0
    model: int = 0
    version: int = 0
    serial_number: int = 0
    firmware_version: int = 0

    @property
    def answered(self) -> bool:
        return any((self.vendor_code, self.model, self.version, self.serial_number, self.firmware_version))

    def describe(self) -> str:
        serial = self.serial_number & 0xFFFFFFFF
        return f"vendor {self.vendor_code:06X} model {self.model} v{self.version} serial {serial:08X}"


@dataclass(frozen=True)
class PdState:
    """A snapshot, replaced (never mutated) by the worker; safe to read from any thread."""

    online: bool = False
    secure: bool = False
    ever_online: bool = False
    identity: PdIdentity = field(default_factory=PdIdentity)
    capabilities: Capabilities = field(default_factory=Capabilities)
    reason: str = "not connected yet"


@dataclass(frozen=True)
class PdOnline:
    address: int
    secure: bool
    identity: PdIdentity
    capabilities: Capabilities


@dataclass(frozen=True)
class PdOffline:
    address: int
    reason: str


@dataclass(frozen=True)
class CardRead:
    address: int
    reader: int
    card_format: int
    bits: int | None
    data: bytes = field(repr=False)


@dataclass(frozen=True)
class StatusReport:
    address: int
    report_type: int  # osdp.StatusReportType: input 0, output 1, local (tamper, power) 2, remote 3
    report: bytes


PanelEvent = PdOnline | PdOffline | CardRead | StatusReport


class CommandFailed(Exception):
    """A command did not reach the PD, or the PD did not accept it."""


# -- the libosdp boundary -------------------------------------------------------------------------


class _Channel(osdp.Channel):  # type: ignore[misc]
    """libosdp's byte channel over one of our transports (shared by every PD on the bus)."""

    def __init__(self, transport: Transport) -> None:
        super().__init__()
        self._transport = transport

    def read(self, max_bytes: int) -> bytes:
        return self._transport.read(max_bytes)

    def write(self, buf: bytes) -> int:
        return self._transport.write(bytes(buf))

    def flush(self) -> None:
        self._transport.flush()


@dataclass
class _Pending:
    command: dict[str, Any]
    future: concurrent.futures.Future[None]


@dataclass
class _Link:
    """Per-PD bookkeeping of the worker thread."""

    state: PdState = field(default_factory=PdState)
    pending: deque[_Pending] = field(default_factory=deque)
    attempt_started: float = 0.0
    retry_delay: float = 1.0
    reenable: bool = False


def _settle(future: concurrent.futures.Future[None], error: str | None) -> None:
    try:
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(CommandFailed(error))
    except concurrent.futures.InvalidStateError:
        pass  # the caller gave up (timeout, cancellation) first


class Panel:
    """A libosdp Control Panel for one bus, run in its own worker thread."""

    def __init__(
        self,
        transport: Transport,
        pds: Sequence[PdSpec],
        *,
        post: Callable[[PanelEvent], None],
        name: str = "osdp",
        refresh_interval: float = 0.005,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        log_level: str = "error",
    ) -> None:
        if not pds:
            raise ValueError("an OSDP bus needs at least one peripheral")
        self.transport = transport
        self.pds = list(pds)
        self._index = {pd.address: i for i, pd in enumerate(self.pds)}
        self._post = post
        self._name = name
        self._interval = refresh_interval
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._log_level = LOG_LEVELS[log_level]
        self._links = [_Link(retry_delay=retry_initial) for _ in self.pds]
        self._requests: SimpleQueue[tuple[str, int, list[_Pending]]] = SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- called from the event loop (or any thread) ------------------------------------------------

    def start(self, timeout: float = 5.0) -> None:
        """Start the worker and wait until libosdp is set up. Blocking: call it via ``to_thread``."""
        if self._thread is not None:
            raise RuntimeError("panel already started")
        # Not a daemon: stop() must be called, and the test kit's lingering-thread check sees it if not.
        self._thread = threading.Thread(target=self._run, name=f"osdp-cp:{self._name}")
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise RuntimeError("libosdp did not set up in time")
        if self._start_error is not None:
            self.stop()
            raise self._start_error

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker and release libosdp and the transport. Blocking; idempotent."""
        thread = self._thread
        self._stop.set()
        self._wake.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                log.error("OSDP panel %s: worker thread did not stop within %.1f s", self._name, timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def state(self, address: int) -> PdState:
        return self._links[self._index[address]].state

    def submit(self, address: int, commands: Sequence[dict[str, Any]]) -> list[concurrent.futures.Future[None]]:
        """Queue ``commands`` for the PD at ``address``, in order; one future per command.

        A future fails with :class:`CommandFailed` when the PD is offline, refuses the command or
        goes offline before acknowledging it; it succeeds once the PD has acknowledged it.
        """
        index = self._index[address]
        batch = [_Pending(dict(command), concurrent.futures.Future()) for command in commands]
        if self._stop.is_set() or not self.running:
            for item in batch:
                _settle(item.future, "the OSDP panel is not running")
        else:
            self._requests.put(("submit", index, batch))
            self._wake.set()
        return [item.future for item in batch]

    def flush(self, address: int) -> None:
        """Drop every command still queued for the PD (one that timed out must never run late)."""
        self._requests.put(("flush", self._index[address], []))
        self._wake.set()

    # -- the worker thread --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            osdp_sys.set_loglevel(self._log_level)
            channel = _Channel(self.transport)
            infos = []
            for pd in self.pds:
                flags = [osdp.LibFlag.EnforceSecure] if pd.enforce_secure else []
                infos.append(osdp.PDInfo(pd.address, channel, scbk=pd.scbk, name=pd.name, flags=flags).get())
            ctx = osdp_sys.ControlPanel(infos)
            ctx.set_event_callback(self._on_event)
            ctx.set_command_completion_callback(self._on_completion)
        except BaseException as exc:  # reported to start(), which raises it on the caller's side
            self._start_error = exc
            self._ready.set()
            return
        now = time.monotonic()
        for link in self._links:
            link.attempt_started = now
        self._ready.set()
        try:
            while not self._stop.is_set():
                self._tick(ctx)
                self._wake.wait(self._interval)
                self._wake.clear()
        except Exception as exc:  # libosdp or a transport bug: the doors must not look online any more
            log.exception("OSDP panel %s: worker failed", self._name)
            for index, link in enumerate(self._links):
                if link.state.online:
                    link.state = replace(link.state, online=False, secure=False, reason=f"OSDP panel failed: {exc!r}")
                    self._emit(PdOffline(self.pds[index].address, link.state.reason))
        finally:
            self._shutdown(ctx)
            ctx = None  # the last reference: libosdp's teardown runs here, in the thread that owns it
            self.transport.close()

    def _shutdown(self, ctx: Any) -> None:
        for index in range(len(self.pds)):
            try:
                ctx.flush_commands(index)
            except Exception:
                log.debug("OSDP panel %s: flush on shutdown failed", self._name, exc_info=True)
        self._drain_requests(ctx, accept=False)
        for link in self._links:
            while link.pending:
                _settle(link.pending.popleft().future, "the OSDP panel stopped")

    def _tick(self, ctx: Any) -> None:
        now = time.monotonic()
        if self.transport.maintain(now):
            log.info("OSDP panel %s: %s is back", self._name, self.transport.describe())
            for link in self._links:
                link.attempt_started = 0.0  # retry every PD at once
        self._drain_requests(ctx, accept=True)
        ctx.refresh()
        online_mask = ctx.status()
        secure_mask = ctx.sc_status()
        for index, link in enumerate(self._links):
            online = bool(online_mask >> index & 1) and self.transport.up
            if online and not link.state.online:
                self._went_online(ctx, index, link, secure=bool(secure_mask >> index & 1))
            elif not online and link.state.online:
                reason = (
                    f"{self.transport.describe()} is down: {self.transport.error}"
                    if not self.transport.up
                    else "stopped answering"
                )
                self._went_offline(ctx, index, link, reason)
            elif not online:
                self._retry(ctx, index, link, now)

    def _went_online(self, ctx: Any, index: int, link: _Link, *, secure: bool) -> None:
        identity = PdIdentity(**{k: int(v) for k, v in (ctx.get_pd_id(index) or {}).items()})
        outputs = ctx.check_capability(index, osdp.Capability.OutputControl)
        leds = ctx.check_capability(index, osdp.Capability.LEDControl)
        buzzer = ctx.check_capability(index, osdp.Capability.AudibleControl)
        readers = ctx.check_capability(index, osdp.Capability.Readers)
        capabilities = Capabilities(
            outputs=int(outputs[1]),
            output_level=int(outputs[0]),
            leds=int(leds[1]),
            buzzer=bool(buzzer[0] or buzzer[1]),
            readers=int(readers[1]),
        )
        link.state = PdState(
            online=True, secure=secure, ever_online=True, identity=identity, capabilities=capabilities, reason=""
        )
        link.retry_delay = self._retry_initial
        link.reenable = False
        self._emit(PdOnline(self.pds[index].address, secure, identity, capabilities))

    def _went_offline(self, ctx: Any, index: int, link: _Link, reason: str) -> None:
        link.state = replace(link.state, online=False, secure=False, reason=reason)
        ctx.flush_commands(index)  # queued commands complete as FLUSHED now, never late
        while link.pending:
            _settle(link.pending.popleft().future, f"PD went offline: {reason}")
        link.attempt_started = time.monotonic()
        self._emit(PdOffline(self.pds[index].address, reason))

    def _retry(self, ctx: Any, index: int, link: _Link, now: float) -> None:
        """libosdp waits 300 s after a failure; try again sooner, with backoff."""
        if not link.state.ever_online:
            identity = PdIdentity(**{k: int(v) for k, v in (ctx.get_pd_id(index) or {}).items()})
            if identity.answered and not link.state.identity.answered:
                link.state = replace(link.state, identity=identity)
            link.state = replace(
                link.state,
                reason=(
                    "answers (PD ID received) but does not complete the Secure Channel handshake: wrong SCBK?"
                    if link.state.identity.answered
                    else f"no answer from address {self.pds[index].address} on {self.transport.describe()}"
                    + (f" ({self.transport.error})" if self.transport.error else "")
                ),
            )
        if not self.transport.up:
            return
        if link.reenable:
            link.reenable = not ctx.enable_pd(index)  # refused until a refresh has seen it disabled
            link.attempt_started = now
            return
        if now - link.attempt_started >= link.retry_delay:
            if ctx.is_pd_enabled(index):
                ctx.disable_pd(index)
            link.reenable = True  # enabled on the next tick, after one refresh
            link.retry_delay = min(link.retry_delay * 2, self._retry_max)

    def _drain_requests(self, ctx: Any, *, accept: bool) -> None:
        while True:
            try:
                kind, index, batch = self._requests.get_nowait()
            except Empty:
                return
            if kind == "flush":
                if accept:
                    ctx.flush_commands(index)
                continue
            link = self._links[index]
            for item in batch:
                if item.future.done():  # the caller gave up before we got to it
                    continue
                if not accept:
                    _settle(item.future, "the OSDP panel stopped")
                elif not link.state.online:
                    _settle(item.future, f"PD is offline: {link.state.reason}")
                elif not ctx.submit_command(index, item.command):
                    _settle(item.future, "libosdp refused the command (PD offline or queue full)")
                else:
                    link.pending.append(item)

    # -- libosdp callbacks (worker thread, inside refresh) ------------------------------------------

    def _on_completion(self, index: int, command: dict[str, Any], status: int) -> None:
        try:
            pending = self._links[index].pending
            match = next((p for p in pending if p.command.get("command") == command.get("command")), None)
            if match is None:
                return
            pending.remove(match)
            ok = status == osdp.CompletionStatus.Ok
            _settle(match.future, None if ok else COMPLETION_NAMES.get(status, f"completion status {status}"))
        except Exception:
            log.exception("OSDP panel %s: completion callback failed", self._name)

    def _on_event(self, index: int, event: dict[str, Any]) -> int:
        try:
            address = self.pds[index].address
            kind = event.get("event")
            if kind == osdp.Event.CardRead:
                card_format = int(event.get("format", 0))
                bits = event.get("length")
                self._emit(
                    CardRead(
                        address,
                        reader=int(event.get("reader_no", 0)),
                        card_format=card_format,
                        bits=int(bits) if bits is not None else None,
                        data=bytes(event.get("data", b"")),
                    )
                )
            elif kind == osdp.Event.Status:
                self._emit(StatusReport(address, int(event.get("type", -1)), bytes(event.get("report", b""))))
            # Key presses (PIN digits) and manufacturer replies are dropped unread, on purpose.
        except Exception:
            log.exception("OSDP panel %s: event callback failed", self._name)
        return 0

    def _emit(self, event: PanelEvent) -> None:
        try:
            self._post(event)
        except Exception:
            log.exception("OSDP panel %s: could not hand an event to the event loop", self._name)
