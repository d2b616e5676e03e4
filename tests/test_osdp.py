"""The OSDP adapter (campusguard as Control Panel) against a real libosdp PeripheralDevice.

The PD runs in its own process (``peers/osdp_pd.py``) on the other end of a pty pair (or on TCP
loopback, as a serial-device server would), with Secure Channel on and the same SCBK on both sides.
It reports every command its command callback receives, with ``time.monotonic()`` (one clock for
every process on the host), so latencies are measured end to end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import tty
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from campusguard.adapters.osdp import wiegand
from campusguard.adapters.osdp.adapter import OsdpAccessControl
from campusguard.sdk import AuthFailed, ConfigError, DoorAction, DoorCommand, DoorEvent, DoorEventKind, NotReady
from campusguard.sdk.testing.conformance import AccessControlConformance, ErrorMapping
from campusguard.sdk.testing.stubs import StubCore, make_context

PEER = Path(__file__).parent / "peers" / "osdp_pd.py"
KEY = "000102030405060708090a0b0c0d0e0f"
OTHER_KEY = "f0e0d0c0b0a090807060504030201000"
ADDRESS = 101

# -- Wiegand -----------------------------------------------------------------------------------------


def test_h10301_encoding_matches_the_bit_layout() -> None:
    # facility 1, card 1: even parity 1 (bits 1-12 hold one 1), odd parity 0 (bits 13-24 hold one 1)
    # -> 1 00000001 0000000000000001 0, left-justified in 4 bytes: 1000 0000 1000 0000 0000 0000 1000 0000
    assert wiegand.encode_h10301(1, 1) == bytes.fromhex("80800080")
    assert wiegand.decode_h10301(wiegand.bits_to_int(bytes.fromhex("80800080"), 26)) == (1, 1)


@pytest.mark.parametrize(("facility", "card"), [(0, 0), (1, 1), (42, 12345), (255, 65535), (128, 32768), (7, 4097)])
def test_h10301_decodes_with_good_parity(facility: int, card: int) -> None:
    credential = wiegand.decode(wiegand.FORMAT_RAW_WIEGAND, wiegand.encode_h10301(facility, card), 26)
    assert (credential.format, credential.facility, credential.card, credential.parity_ok) == (
        "H10301",
        facility,
        card,
        True,
    )
    assert credential.describe() == f"H10301 facility {facility} card {card}"
    assert credential.describe(numbers=False) == "H10301 (numbers withheld)"


@pytest.mark.parametrize("flip", [0, 1, 8, 12, 13, 20, 25])
def test_h10301_with_a_flipped_bit_is_opaque(flip: int) -> None:
    value = wiegand.bits_to_int(wiegand.encode_h10301(42, 12345), 26) ^ (1 << (25 - flip))
    assert wiegand.decode_h10301(value) is None
    credential = wiegand.decode(wiegand.FORMAT_RAW_WIEGAND, wiegand.int_to_bits(value, 26), 26)
    assert credential.format == "wiegand" and credential.parity_ok is False and not credential.decoded
    assert "bad parity" in credential.describe()


@pytest.mark.parametrize("bits", [4, 8, 34, 35, 37, 48, 64])
def test_other_lengths_are_opaque(bits: int) -> None:
    data = bytes(range(1, (bits + 7) // 8 + 1))
    credential = wiegand.decode(wiegand.FORMAT_RAW_WIEGAND, data, bits)
    assert credential.format == "wiegand" and credential.bits == bits and not credential.decoded
    assert credential.describe() == f"{bits}-bit wiegand credential (opaque)"


def test_ascii_and_short_data_are_opaque() -> None:
    assert wiegand.decode(wiegand.FORMAT_ASCII, b"1234567", None).describe() == (
        "ascii credential, 7 characters (opaque)"
    )
    assert not wiegand.decode(wiegand.FORMAT_RAW_WIEGAND, b"\x80", 26).decoded  # 26 bits need 4 bytes


def test_holder_ids_are_keyed_stable_and_opaque() -> None:
    card = wiegand.decode(wiegand.FORMAT_RAW_WIEGAND, wiegand.encode_h10301(42, 12345), 26)
    same = wiegand.decode(wiegand.FORMAT_RAW_WIEGAND, wiegand.encode_h10301(42, 12345) + b"\x00", 26)
    other = wiegand.decode(wiegand.FORMAT_RAW_WIEGAND, wiegand.encode_h10301(42, 12346), 26)
    key = b"k" * 32
    assert wiegand.holder_id(card, key) == wiegand.holder_id(same, key)
    assert wiegand.holder_id(card, key) != wiegand.holder_id(other, key)
    assert wiegand.holder_id(card, key) != wiegand.holder_id(card, b"x" * 32)
    assert "12345" not in wiegand.holder_id(card, key) and wiegand.holder_id(card, key).startswith("card-")


# -- configuration -----------------------------------------------------------------------------------


def config(path: str, *peripherals: dict[str, Any], **options: Any) -> dict[str, Any]:
    return {
        "transport": {"serial": path} if not path.startswith("tcp:") else {"tcp": path[4:]},
        "peripherals": list(peripherals) or [door()],
        **options,
    }


def door(door_id: str = "front", address: int = ADDRESS, **options: Any) -> dict[str, Any]:
    return {"address": address, "door_id": door_id, "scbk": KEY, **options}


def test_secure_channel_is_required_unless_explicitly_waived() -> None:
    Config = OsdpAccessControl.Config
    with pytest.raises(ValidationError, match="scbk is required"):
        Config.model_validate(config("/dev/null", {"address": 1, "door_id": "a"}))
    ok = Config.model_validate(config("/dev/null", {"address": 1, "door_id": "a", "allow_insecure": True}))
    assert ok.model_dump()["peripherals"][0]["scbk"] is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scbk": "00112233"}, "16 bytes"),
        ({"scbk": "zz" * 16}, "hexadecimal"),
        ({"address": 127}, "less than or equal to 126"),
        ({"strike_seconds": 30}, "less than or equal to 25.5"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_peripheral_options_are_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        OsdpAccessControl.Config.model_validate(config("/dev/null", {**door(), **change}))


def test_bus_options_are_checked() -> None:
    Config = OsdpAccessControl.Config
    with pytest.raises(ValidationError, match="address must be unique"):
        Config.model_validate(config("/dev/null", door("a"), door("b")))
    with pytest.raises(ValidationError, match="host:port"):
        Config.model_validate(config("tcp:nowhere", door()))
    tcp = Config.model_validate(config("tcp:[::1]:4001", door())).transport
    assert (getattr(tcp, "host", None), getattr(tcp, "port", None)) == ("::1", 4001)
    assert "0f" not in repr(Config.model_validate(config("/dev/null", door())))  # the key stays hidden


# -- the peer PD -------------------------------------------------------------------------------------


class PdPeer:
    """One libosdp PeripheralDevice process; what it reports is collected by a reader thread."""

    def __init__(self, *args: str, fd: int | None = None, port: int = 0, log: Path | None = None) -> None:
        self.args = list(args)
        self.fd = fd
        self.tcp_port = port
        self.log = log
        self.lines: list[dict[str, Any]] = []
        self.port: int | None = None
        self._process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> PdPeer:
        where = ["--fd", str(self.fd)] if self.fd is not None else ["--tcp", str(self.tcp_port)]
        stderr = self.log.open("a") if self.log else subprocess.DEVNULL
        self._process = subprocess.Popen(
            [sys.executable, str(PEER), *where, *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            pass_fds=(self.fd,) if self.fd is not None else (),
        )
        if self.log:
            stderr.close()  # type: ignore[union-attr]
        assert self._process.stdout is not None
        first = self._process.stdout.readline()
        if not first:
            self.stop()
            raise RuntimeError(f"the PD peer did not start (see {self.log})")
        self.port = json.loads(first)["ready"]
        self._reader = threading.Thread(target=self._read, name="osdp-peer-reader", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(json.loads(line))

    def commands(self, kind: int | None = None) -> list[dict[str, Any]]:
        return [
            {**line["command"], "t": line["t"]}
            for line in list(self.lines)
            if "command" in line and (kind is None or line["command"]["command"] == kind)
        ]

    def outputs(self) -> list[dict[str, Any]]:
        return [line for line in list(self.lines) if "output" in line]

    def online(self) -> bool:
        states = [line for line in list(self.lines) if "online" in line]
        return bool(states and states[-1]["online"])

    def send(self, request: dict[str, Any]) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()

    def card(self, data: bytes, bits: int, card_format: int = wiegand.FORMAT_RAW_WIEGAND) -> None:
        event = {"event": 1, "reader_no": 0, "direction": 0, "format": card_format, "data_hex": data.hex()}
        if card_format != wiegand.FORMAT_ASCII:
            event["length"] = bits
        self.send({"event": event})

    def kill(self) -> None:
        """A power cut: no goodbye."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def _end(self, sig: int) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        if self._reader is not None:
            self._reader.join(5)
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with suppress(OSError):
                    stream.close()


class PtyBus:
    """Both ends of a pty: the adapter opens the slave by path, PDs get the master fd."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.master)
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with suppress(OSError):
                os.close(fd)


@pytest.fixture
def pty_bus() -> Iterator[PtyBus]:
    bus = PtyBus()
    yield bus
    bus.close()


@pytest.fixture
def peers(tmp_path: Path) -> Iterator[Callable[..., PdPeer]]:
    started: list[PdPeer] = []

    def start(
        *args: str, fd: int | None = None, port: int = 0, key: str | None = KEY, address: int = ADDRESS
    ) -> PdPeer:
        argv = ["--address", str(address), *(["--scbk", key] if key else []), *args]
        peer = PdPeer(*argv, fd=fd, port=port, log=tmp_path / f"pd-{len(started)}.log").start()
        started.append(peer)
        return peer

    yield start
    for peer in started:
        peer.stop()


def build(tmp_path: Path, options: dict[str, Any]) -> tuple[OsdpAccessControl, StubCore]:
    core = StubCore(tmp_path)
    adapter = OsdpAccessControl(
        "doors", OsdpAccessControl.Config.model_validate(options), make_context("doors", tmp_path, core)
    )
    return adapter, core


@asynccontextmanager
async def running(adapter: OsdpAccessControl) -> AsyncIterator[OsdpAccessControl]:
    await adapter.start()
    try:
        yield adapter
    finally:
        await adapter.stop()


def door_events(core: StubCore, kind: DoorEventKind | None = None) -> list[DoorEvent]:
    return [m for t, m in core.bus.published if t == "door_events" and (kind is None or m.kind == kind)]


async def until(condition: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.005)


def command(action: DoorAction, door_id: str = "front", **kw: Any) -> DoorCommand:
    return DoorCommand(door_id=door_id, action=action, requested_by="person:test", **kw)


OUTPUT, LED, BUZZER = 1, 2, 3

# -- against the real PD ------------------------------------------------------------------------------


@pytest.mark.slow
async def test_pd_comes_online_with_secure_channel_and_reads_cards(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer], caplog: Any
) -> None:
    pd = peers(fd=pty_bus.master)
    adapter, core = build(tmp_path, config(pty_bus.path))
    caplog.set_level(logging.DEBUG)
    async with running(adapter):
        online = door_events(core, DoorEventKind.DEVICE_ONLINE)
        assert [e.door_id for e in online] == ["front"] and "secure channel" in online[0].detail
        await until(pd.online, what="the PD to see the panel")
        state = await adapter.execute(command(DoorAction.QUERY))
        assert "online, secure channel" in state and "state unknown" in state

        pd.card(wiegand.encode_h10301(42, 12345), 26)
        read = await until(lambda: door_events(core, DoorEventKind.ACCESS_DENIED), what="the card read")
        event = read[0]
        assert event.door_id == "front" and event.source == "doors"
        assert event.credential_holder is not None and event.credential_holder.startswith("card-")
        assert "H10301 facility 42 card 12345" in event.detail and "stays locked" in event.detail

        bad = wiegand.bits_to_int(wiegand.encode_h10301(42, 12345), 26) ^ 1  # odd parity broken
        pd.card(wiegand.int_to_bits(bad, 26), 26)
        pd.card(bytes.fromhex("0123456789"), 35)
        pd.card(wiegand.encode_h10301(42, 12345), 26)  # the same card again
        await until(lambda: len(door_events(core, DoorEventKind.ACCESS_DENIED)) >= 4, what="three more reads")
        reads = door_events(core, DoorEventKind.ACCESS_DENIED)
        assert "bad parity" in reads[1].detail and "35-bit wiegand credential (opaque)" in reads[2].detail
        assert reads[3].credential_holder == event.credential_holder  # stable per card
        assert len({r.credential_holder for r in reads[:3]}) == 3
    assert "12345" not in caplog.text and event.credential_holder in caplog.text
    assert (tmp_path / "holder-id.key").stat().st_mode & 0o077 == 0


@pytest.mark.slow
async def test_lockdown_reaches_the_pd_as_output_led_and_buzzer(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    pd = peers(fd=pty_bus.master)
    adapter, _ = build(tmp_path, config(pty_bus.path, door(strike_output=2, reader=0)))
    async with running(adapter):
        result = await adapter.execute(command(DoorAction.LOCKDOWN, reason="drill", exercise=True))
        assert result == "locked down (strike output 2 off, LED red, buzzer) (exercise)"
        # execute() returns once the PD acknowledged each command, so they have all arrived
        out, led, buzzer = pd.commands(OUTPUT), pd.commands(LED), pd.commands(BUZZER)
        assert [(c["output_no"], c["control_code"], c["timer_count"]) for c in out] == [(2, 1, 0)]  # off, abort timer
        assert len(led) == 1 and {k: led[0][k] for k in ("control_code", "on_color", "off_color", "temporary")} == {
            "control_code": 1,  # permanent state
            "on_color": 1,  # red
            "off_color": 1,
            "temporary": False,
        }
        assert led[0]["off_count"] == 0 and led[0]["on_count"] > 0  # steady
        assert len(buzzer) == 1 and buzzer[0]["control_code"] == 2 and buzzer[0]["rep_count"] > 0  # a pattern
        assert pd.outputs() == [] or pd.outputs()[-1]["on"] is False
        assert (await adapter.execute(command(DoorAction.QUERY))).startswith("lockdown;")

        release = await adapter.execute(command(DoorAction.LOCKDOWN_RELEASE))
        assert release == "lockdown released, door still locked, LED off, buzzer off"
        assert len(pd.commands(OUTPUT)) == 1  # releasing a lockdown never touches the strike
        assert pd.commands(LED)[-1]["on_color"] == 0 and pd.commands(BUZZER)[-1]["control_code"] == 1

        assert await adapter.execute(command(DoorAction.UNLOCK)) == "unlocked (strike output 2 on)"
        assert await adapter.execute(command(DoorAction.LOCK)) == "locked (strike output 2 off)"
        assert [c["control_code"] for c in pd.commands(OUTPUT)] == [1, 2, 1]
        assert [o["on"] for o in pd.outputs()][-2:] == [True, False]

        dry = await adapter.execute(command(DoorAction.UNLOCK, dry_run=True))
        assert dry.startswith("dry run, nothing sent") and len(pd.commands(OUTPUT)) == 3

        with pytest.raises(ValueError, match=r"unknown door 'back'.*controls front"):
            await adapter.execute(command(DoorAction.LOCK, door_id="back"))


@pytest.mark.slow
async def test_momentary_access_turns_the_strike_on_then_off(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    pd = peers(fd=pty_bus.master)
    adapter, _ = build(tmp_path, config(pty_bus.path, door(strike_seconds=0.6)))
    async with running(adapter):
        await adapter.execute(command(DoorAction.LOCK))
        start = time.monotonic()
        result = await adapter.execute(command(DoorAction.MOMENTARY_ACCESS))
        assert result == "released for 0.6 s (strike output 0 on, PD-timed), then relocks"
        relock = await until(lambda: pd.commands(OUTPUT)[2:], what="the relock command")
        pulse = pd.commands(OUTPUT)[1]
        assert (pulse["control_code"], pulse["timer_count"]) == (5, 6)  # temporary on, 6 x 100 ms
        assert relock[0]["control_code"] == 1
        assert 0.55 <= relock[0]["t"] - pulse["t"] <= 1.0
        on, off = pd.outputs()[-2:]
        assert on["on"] is True and off["on"] is False and 0.5 <= off["t"] - on["t"] <= 1.0
        assert on["t"] - start < 0.5
        assert "locked;" in await adapter.execute(command(DoorAction.QUERY))

        # A lock during the release cancels the relock: one output command, not two.
        await adapter.execute(command(DoorAction.MOMENTARY_ACCESS))
        await adapter.execute(command(DoorAction.LOCK))
        count = len(pd.commands(OUTPUT))
        await asyncio.sleep(0.8)
        assert len(pd.commands(OUTPUT)) == count

        # Stopping during a release sends the relock first.
        await adapter.execute(command(DoorAction.MOMENTARY_ACCESS))
        count = len(pd.commands(OUTPUT))
    assert [c["control_code"] for c in pd.commands(OUTPUT)[count:]] == [1]


@pytest.mark.slow
async def test_commands_follow_what_the_pd_declared(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    # One output with on/off control only (no timers), no LED, no buzzer.
    pd = peers("--outputs", "1", "--output-level", "1", "--leds", "0", "--buzzer", "0", fd=pty_bus.master)
    adapter, _ = build(tmp_path, config(pty_bus.path, door(strike_seconds=0.3)))
    async with running(adapter):
        assert await adapter.execute(command(DoorAction.LOCKDOWN)) == "locked down (strike output 0 off)"
        assert await adapter.execute(command(DoorAction.LOCKDOWN_RELEASE)) == "lockdown released, door still locked"
        result = await adapter.execute(command(DoorAction.MOMENTARY_ACCESS))
        assert result == "released for 0.3 s (strike output 0 on, timed by campusguard), then relocks"
        codes = await until(lambda: [c["control_code"] for c in pd.commands(OUTPUT)][1:] == [2, 1], what="on, off")
        assert codes and pd.commands(LED) == pd.commands(BUZZER) == []

    wrong, _ = build(tmp_path, config(pty_bus.path, door(strike_output=3)))
    async with running(wrong):
        # An output the PD does not have would be NAKed, and libosdp then drops the PD for minutes.
        with pytest.raises(ConfigError, match="strike_output 3 does not exist on OSDP PD 101, which reports 1"):
            await wrong.execute(command(DoorAction.LOCK))
        assert "online" in await wrong.execute(command(DoorAction.QUERY))
    assert len(pd.commands(OUTPUT)) == 3


@pytest.mark.slow
async def test_wrong_scbk_never_comes_online_and_gets_no_command(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    pd = peers(fd=pty_bus.master, key=OTHER_KEY)
    adapter, core = build(tmp_path, config(pty_bus.path, startup_wait=1.5))
    with pytest.raises(AuthFailed, match=r"PD 101 \(front\): answers .* Secure Channel handshake: wrong SCBK"):
        await adapter.start()
    await adapter.stop()
    with pytest.raises(NotReady, match="not running"):
        await adapter.execute(command(DoorAction.LOCKDOWN))
    # The PD answered ID and capabilities (so it thinks it is polled) but never got a secure session.
    assert pd.commands() == [] and not any(line.get("secure") for line in pd.lines)
    assert door_events(core, DoorEventKind.DEVICE_ONLINE) == []


@pytest.mark.slow
async def test_a_pd_without_secure_channel_is_refused_unless_allowed(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    pd = peers(fd=pty_bus.master, key=None)  # no key: the PD cannot do Secure Channel with ours
    adapter, _ = build(tmp_path, config(pty_bus.path, startup_wait=1.5))
    with pytest.raises(AuthFailed, match="Secure Channel"):
        await adapter.start()
    await adapter.stop()
    assert pd.commands() == []

    waived, core = build(
        tmp_path, config(pty_bus.path, {"address": ADDRESS, "door_id": "front", "allow_insecure": True})
    )
    async with running(waived):
        assert "NO secure channel" in await waived.execute(command(DoorAction.QUERY))
        assert "WITHOUT secure channel" in door_events(core, DoorEventKind.DEVICE_ONLINE)[0].detail
        await waived.execute(command(DoorAction.LOCK))
    assert [c["control_code"] for c in pd.commands(OUTPUT)] == [1]


@pytest.mark.slow
async def test_a_missing_pd_is_reported_and_refuses_commands(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    peers(fd=pty_bus.master)
    adapter, core = build(tmp_path, config(pty_bus.path, door(), door("annex", address=102), startup_wait=1.0))
    async with running(adapter):  # one PD is enough to run; the other is reported
        offline = door_events(core, DoorEventKind.DEVICE_OFFLINE)
        assert [e.door_id for e in offline] == ["annex"] and "no answer from address 102" in offline[0].detail
        await until(lambda: core.incidents, what="the incident")
        assert [i.kind for i in core.incidents] == ["device_offline"] and "annex" in core.incidents[0].title
        with pytest.raises(NotReady, match=r"door annex: OSDP PD 102 is offline \(no answer"):
            await adapter.execute(command(DoorAction.LOCKDOWN, door_id="annex"))
        assert "locked" in await adapter.execute(command(DoorAction.LOCK))
        await asyncio.sleep(2.5)  # retries of the missing PD raise nothing new
        assert len(core.incidents) == 1


@pytest.mark.slow
async def test_pd_power_cut_is_reported_once_and_recovers(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    pd = peers(fd=pty_bus.master)
    adapter, core = build(tmp_path, config(pty_bus.path))
    async with running(adapter):
        await until(pd.online, what="the PD online")
        await adapter.execute(command(DoorAction.LOCKDOWN))
        pd.kill()
        cut = time.monotonic()
        offline = await until(lambda: door_events(core, DoorEventKind.DEVICE_OFFLINE), 15, "the offline event")
        detected = time.monotonic() - cut
        assert offline[0].door_id == "front" and "stopped answering" in offline[0].detail
        await until(lambda: core.incidents, what="the incident")
        assert [(i.kind, i.source) for i in core.incidents] == [("device_offline", "doors")]
        with pytest.raises(NotReady, match="offline"):
            await adapter.execute(command(DoorAction.LOCKDOWN))

        back = peers(fd=pty_bus.master)  # power restored: a fresh PD on the same wire
        restored = time.monotonic()
        await until(lambda: len(door_events(core, DoorEventKind.DEVICE_ONLINE)) == 2, 15, "the PD back online")
        recovered = time.monotonic() - restored
        # The lockdown in effect is sent again to the rebooted PD (without the buzzer).
        await until(lambda: back.commands(LED), what="the lockdown restored")
        assert [c["control_code"] for c in back.commands(OUTPUT)] == [1] and back.commands(LED)[0]["on_color"] == 1
        assert back.commands(BUZZER) == []
        assert (await adapter.execute(command(DoorAction.QUERY))).startswith("lockdown;")
        assert (await adapter.execute(command(DoorAction.LOCKDOWN_RELEASE))).startswith("lockdown released")
        assert await adapter.execute(command(DoorAction.LOCK)) == "locked (strike output 0 off)"
        assert [c["control_code"] for c in back.commands(OUTPUT)] == [1, 1]
        assert len(core.incidents) == 1  # one per outage
    print(f"\nOSDP: power cut detected after {detected:.1f} s, back online {recovered:.1f} s after power-up")


@pytest.mark.slow
async def test_lockdown_latency_to_the_pd(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    pd = peers(fd=pty_bus.master)
    adapter, _ = build(tmp_path, config(pty_bus.path))
    to_pd: list[float] = []
    acked: list[float] = []
    async with running(adapter):
        for _ in range(50):
            seen = len(pd.commands(OUTPUT))
            start = time.monotonic()
            await adapter.execute(command(DoorAction.LOCKDOWN))
            acked.append(time.monotonic() - start)
            arrived = await until(lambda n=seen: pd.commands(OUTPUT)[n:], what="the output command")  # type: ignore[misc]
            to_pd.append(arrived[0]["t"] - start)
            await adapter.execute(command(DoorAction.LOCKDOWN_RELEASE))

    def pct(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, round(q * (len(values) - 1)))] * 1000

    line = (
        f"execute(lockdown) -> PD output callback: p50 {pct(to_pd, 0.5):.1f} ms, p99 {pct(to_pd, 0.99):.1f} ms, "
        f"max {max(to_pd) * 1000:.1f} ms; -> all 3 commands acknowledged: p50 {pct(acked, 0.5):.1f} ms, "
        f"p99 {pct(acked, 0.99):.1f} ms (n={len(to_pd)})"
    )
    print(f"\nOSDP latency: {line}")
    (tmp_path / "latency.txt").write_text(line)
    assert statistics.median(to_pd) < 0.1 and max(to_pd) < 1.0


@pytest.mark.slow
async def test_tcp_serial_server_and_its_loss(
    campusguard_no_lingering: None, tmp_path: Path, peers: Callable[..., PdPeer]
) -> None:
    pd = peers()
    adapter, core = build(tmp_path, config(f"tcp:127.0.0.1:{pd.port}"))
    async with running(adapter):
        assert await adapter.execute(command(DoorAction.LOCK)) == "locked (strike output 0 off)"
        assert [c["control_code"] for c in pd.commands(OUTPUT)] == [1]
        pd.kill()  # the serial server goes away: the link drop is seen at once, not after 8 s
        start = time.monotonic()
        offline = await until(lambda: door_events(core, DoorEventKind.DEVICE_OFFLINE), 5, "the offline event")
        assert time.monotonic() - start < 2.0 and "tcp 127.0.0.1" in offline[0].detail
        await until(lambda: core.incidents, what="the incident")

        back = peers(port=pd.port)  # the serial server is back: the transport reconnects by itself
        await until(lambda: len(door_events(core, DoorEventKind.DEVICE_ONLINE)) == 2, 15, "the PD back online")
        assert await adapter.execute(command(DoorAction.UNLOCK)) == "unlocked (strike output 0 on)"
        assert [c["control_code"] for c in back.commands(OUTPUT)] == [2] and len(core.incidents) == 1


@pytest.mark.slow
async def test_a_failing_panel_takes_its_doors_offline(
    campusguard_no_lingering: None, tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    pd = peers(fd=pty_bus.master)
    adapter, core = build(tmp_path, config(pty_bus.path))
    async with running(adapter):
        panel = adapter._panel
        assert panel is not None

        def broken(ctx: Any) -> None:
            raise RuntimeError("simulated libosdp failure")

        panel._tick = broken  # type: ignore[method-assign]
        offline = await until(lambda: door_events(core, DoorEventKind.DEVICE_OFFLINE), what="the offline event")
        assert "OSDP panel failed" in offline[0].detail and not panel.running
        with pytest.raises(NotReady, match="offline"):
            await adapter.execute(command(DoorAction.LOCK))
    assert pd.commands() == []


async def test_unopenable_bus_is_not_ready(campusguard_no_lingering: None, tmp_path: Path) -> None:
    adapter, _ = build(tmp_path, config(str(tmp_path / "no-such-tty")))
    with pytest.raises(NotReady, match=r"cannot open the OSDP bus .*no-such-tty.*No such file"):
        await adapter.start()
    await adapter.stop()
    adapter, _ = build(tmp_path, config("tcp:127.0.0.1:1"))
    with pytest.raises(NotReady, match=r"tcp 127.0.0.1:1.*refused"):
        await adapter.start()
    await adapter.stop()


# -- the SDK's contract ---------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
class TestOsdpConformance(AccessControlConformance, ErrorMapping):
    component_class = OsdpAccessControl

    @pytest.fixture(autouse=True)
    def _pd(self, pty_bus: PtyBus, peers: Callable[..., PdPeer]) -> None:
        self.bus = pty_bus
        self.pd = peers(fd=pty_bus.master)

    def valid_config(self) -> dict[str, Any]:
        return config(self.bus.path, door("door-1"))

    def unreachable_config(self) -> dict[str, Any]:
        return config(f"tcp:127.0.0.1:{closed_port()}", door("door-1"))

    def bad_credentials_config(self) -> dict[str, Any]:
        return config(self.bus.path, door("door-1", scbk=OTHER_KEY), startup_wait=1.5)


# -- through the core -------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_runs_in_the_core_from_plugins_toml(
    tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer], campusguard_core: Any, monkeypatch: Any
) -> None:
    pd = peers(fd=pty_bus.master)
    monkeypatch.setenv("CG_TEST_OSDP_SCBK", KEY)
    toml = f"""
[adapters.doors]
type = "osdp"
transport = {{ serial = "{pty_bus.path}" }}

[[adapters.doors.peripherals]]
address = {ADDRESS}
door_id = "front"
scbk = {{ env = "CG_TEST_OSDP_SCBK" }}
"""
    async with campusguard_core(toml, entry_points=True) as core:
        assert core.state("adapters", "doors") == "loaded", core.error("adapters", "doors")
        doors = core.component("adapters", "doors")
        assert isinstance(doors, OsdpAccessControl)
        assert (await doors.execute(command(DoorAction.LOCKDOWN))).startswith("locked down")
    assert [c["control_code"] for c in pd.commands(OUTPUT)] == [1]


@pytest.mark.slow
async def test_a_confirmed_weapon_locks_the_real_door_down_and_leaves_the_way_out(
    tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer], campusguard_core: Any, monkeypatch: Any
) -> None:
    """Issue 6's acceptance path: weapon observation -> rule -> lockdown scenario -> safety gate -> OSDP PD,
    and CAP alerts (validated against the OASIS XSD) to an HTTP endpoint and to SIPp."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from peers.cap_schema import validate_cap
    from peers.sipp import Sipp, body_parts, split_message

    from campusguard.sdk import OBSERVATIONS, StageStamp
    from campusguard.sdk.testing import make_observation

    alerts: list[bytes] = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            alerts.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    endpoint = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    pd = peers(fd=pty_bus.master)
    monkeypatch.setenv("CG_TEST_OSDP_SCBK", KEY)
    async with Sipp("message_200.xml", tmp_path / "sipp", "tcp") as psap:
        toml = f"""
[adapters.panel]
type = "osdp"
transport = {{ serial = "{pty_bus.path}" }}
[[adapters.panel.peripherals]]
address = {ADDRESS}
door_id = "front"
scbk = {{ env = "CG_TEST_OSDP_SCBK" }}

[adapters.county]
type = "cap_http"
url = "http://127.0.0.1:{endpoint.server_address[1]}/cap"
sender = "safety@school.example"

[adapters.psap]
type = "cap_sip"
target = "{psap.uri}"
transport = "tcp"
sender = "safety@school.example"
area = {{ description = "Lincoln High School", latitude = 40.7128, longitude = -74.006 }}

[doors.front]
via = "panel"
egress = true          # free egress hardware: secured from outside only
[doors.stair]
via = "panel"
egress = true
locks = "both"         # a maglock that would hold people in: never locked

[scenarios.lockdown]
kind = "lockdown"
doors = ["front", "stair"]

[[rules]]
name = "weapon"
when = {{ kinds = ["weapon"] }}
exercise = true
[[rules.actions]]
do = "door_scenario"
scenario = "lockdown"
[[rules.actions]]
do = "dispatch"
targets = ["county", "psap"]
"""
        try:
            async with campusguard_core(toml, entry_points=True) as core:
                assert core.state("adapters", "panel") == "loaded", core.error("adapters", "panel")
                captured = StageStamp.now()
                core.api.bus.publish(OBSERVATIONS, make_observation(kind="weapon", camera_id="gym", captured=captured))
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and not (
                    pd.commands(OUTPUT) and pd.commands(LED) and pd.commands(BUZZER) and alerts and psap.received()
                ):
                    await asyncio.sleep(0.01)
                (strike,) = pd.commands(OUTPUT)
                assert strike["control_code"] == 1  # output off: the strike de-energised, secured from outside
                assert pd.commands(LED) and pd.commands(BUZZER)  # the reader shows the lockdown
                audit = {(e.subject, e.action): e.detail for e in await core.api.store.audit_entries()}
                assert audit[("front", "door.lockdown.done")]["exercise"] is True  # a drill, end to end
                assert "could trap people" in audit[("stair", "door.lockdown.refused")]["detail"]
        finally:
            endpoint.shutdown()
        assert await psap.done() == 0
    (alert,) = alerts
    root = validate_cap(alert)  # the OASIS CAP 1.2 XSD
    assert root.findtext("{urn:oasis:names:tc:emergency:cap:1.2}status") == "Exercise"
    (raw,) = psap.received()
    _, headers, body = split_message(raw)
    caps = [p for p in body_parts(headers["content-type"], body) if "cap" in p.get_content_type()]
    assert len(caps) == 1 and validate_cap(caps[0].get_payload(decode=True)) is not None


@pytest.mark.slow
def test_the_doors_cli_acts_on_its_own_when_no_core_runs(
    tmp_path: Path, pty_bus: PtyBus, peers: Callable[..., PdPeer]
) -> None:
    """No core running: `campusguard doors` starts just the access control, acts, audits and stops."""
    import getpass

    from campusguard.core.store import SQLiteStore

    pd = peers(fd=pty_bus.master)
    config = tmp_path / "plugins.toml"
    config.write_text(f"""
[core]
data_dir = "var"

[adapters.panel]
type = "osdp"
transport = {{ serial = "{pty_bus.path}" }}
[[adapters.panel.peripherals]]
address = {ADDRESS}
door_id = "front"
scbk = "{KEY}"

[doors.front]
via = "panel"
egress = true

[scenarios.lockdown]
kind = "lockdown"
doors = ["front"]
""")
    cli = str(Path(sys.executable).parent / "campusguard")

    def doors(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([cli, "doors", *args, "-c", str(config)], capture_output=True, text=True, timeout=90)

    status = doors("status", "--by", "ms.rivera")
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith("front") and " done " in status.stdout
    lockdown = doors("lockdown", "lockdown", "--by", "ms.rivera", "--exercise", "--reason", "drill")
    assert lockdown.returncode == 0, lockdown.stderr
    assert [c["control_code"] for c in pd.commands(OUTPUT)] == [1]

    async def audited() -> list[Any]:
        store = SQLiteStore(tmp_path / "var" / "campusguard.db")
        await store.open()
        try:
            return [e for e in await store.audit_entries() if e.action == "door.lockdown.done"]
        finally:
            await store.close()

    (entry,) = asyncio.run(audited())
    assert entry.actor == "ms.rivera" and entry.detail["authenticated_as"] == getpass.getuser()
    assert entry.detail["exercise"] is True
