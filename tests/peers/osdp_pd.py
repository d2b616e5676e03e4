"""A real libosdp PeripheralDevice (an OSDP reader/door controller), run as its own process.

    python osdp_pd.py --fd 5 --address 101 --scbk 00112233...      # over an inherited pty master
    python osdp_pd.py --tcp 0 --address 101 --scbk 00112233...     # as a serial-device server

It prints JSON lines on stdout: ``{"ready": port-or-null}`` first, then one line per command the
PD's command callback receives (``{"command": {...}, "t": time.monotonic()}``; CLOCK_MONOTONIC is
shared by every process on the host, so the test can measure latency), and the simulated state of
each output whenever it changes (``{"output": 0, "on": true, "t": ...}``, temporary/timed commands
included). It reads JSON lines on stdin: ``{"event": {...}}`` is submitted with
``submit_event`` (bytes as hex under ``data_hex``/``report_hex``) and ``{"quit": true}`` stops it.
SIGTERM stops it too; SIGKILL is a power cut.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

import osdp  # type: ignore[import-untyped]


class FastPeripheralDevice(osdp.PeripheralDevice):  # type: ignore[misc]
    """A real PD services its UART continuously; the wrapper's loop sleeps 20 ms between refreshes."""

    @staticmethod
    def refresh(event: threading.Event, lock: threading.Lock, ctx: Any) -> None:
        while not event.is_set():
            with lock:
                ctx.refresh()
            event.wait(0.001)


class FdChannel(osdp.Channel):  # type: ignore[misc]
    def __init__(self, fd: int) -> None:
        super().__init__()
        self.fd = fd
        os.set_blocking(fd, False)

    def read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self.fd, max_bytes)
        except OSError:  # EAGAIN, or EIO while nobody holds the other end
            return b""

    def write(self, buf: bytes) -> int:
        try:
            return os.write(self.fd, bytes(buf))
        except OSError:
            return 0

    def flush(self) -> None:
        while self.read(4096):
            pass


class TcpServerChannel(osdp.Channel):  # type: ignore[misc]
    """Serves one Control Panel at a time, like a serial-device server; a new client replaces it."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.setblocking(False)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def _accept(self) -> None:
        try:
            conn, _ = self.server.accept()
        except BlockingIOError:
            return
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.conn is not None:
            self.conn.close()
        self.conn = conn

    def read(self, max_bytes: int) -> bytes:
        self._accept()
        if self.conn is None:
            return b""
        try:
            data = self.conn.recv(max_bytes)
        except BlockingIOError:
            return b""
        except OSError:
            data = b""
        if not data:
            self.conn.close()
            self.conn = None
        return data

    def write(self, buf: bytes) -> int:
        if self.conn is None:
            return 0
        try:
            return self.conn.send(bytes(buf))
        except OSError:
            return 0

    def flush(self) -> None:
        while self.read(4096):
            pass


class Outputs:
    """What the output relays do with the OSDP output commands (temporary states time out)."""

    def __init__(self, emit: Any) -> None:
        self.emit = emit
        self.permanent: dict[int, bool] = {}
        self.current: dict[int, bool] = {}
        self.timers: dict[int, threading.Timer] = {}
        self.lock = threading.Lock()

    def _set(self, number: int, on: bool) -> None:
        if self.current.get(number) != on:
            self.current[number] = on
            self.emit({"output": number, "on": on, "t": time.monotonic()})

    def _cancel(self, number: int) -> None:
        timer = self.timers.pop(number, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, number: int) -> None:
        with self.lock:
            self.timers.pop(number, None)
            self._set(number, self.permanent.get(number, False))

    def command(self, number: int, code: int, timer_count: int) -> None:
        with self.lock:
            if code in (1, 2):  # permanent off/on, abort timed operation
                self._cancel(number)
                self.permanent[number] = code == 2
                self._set(number, code == 2)
            elif code in (3, 4):  # permanent off/on, let a timed operation finish
                self.permanent[number] = code == 4
                if number not in self.timers:
                    self._set(number, code == 4)
            elif code in (5, 6):  # temporary on/off for timer_count x 100 ms
                self._cancel(number)
                self._set(number, code == 5)
                timer = threading.Timer(timer_count / 10.0, self._expire, (number,))
                timer.daemon = True
                self.timers[number] = timer
                timer.start()

    def close(self) -> None:
        with self.lock:
            for number in list(self.timers):
                self._cancel(number)


def main() -> int:
    parser = argparse.ArgumentParser()
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--fd", type=int, help="an inherited pty master (or any byte stream) to serve")
    where.add_argument("--tcp", type=int, help="listen on 127.0.0.1:PORT (0: any free port)")
    parser.add_argument("--address", type=int, default=101)
    parser.add_argument("--scbk", help="Secure Channel base key, hex; omitted: no key (install mode)")
    parser.add_argument("--outputs", type=int, default=4)
    parser.add_argument("--output-level", type=int, default=2, help="compliance level of output control")
    parser.add_argument("--leds", type=int, default=1)
    parser.add_argument("--buzzer", type=int, default=1)
    parser.add_argument("--log-level", default="Error")
    args = parser.parse_args()

    out_lock = threading.Lock()

    def emit(obj: dict[str, Any]) -> None:
        with out_lock:
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()

    if args.fd is not None:
        channel: Any = FdChannel(args.fd)
        channel.flush()  # powering up: whatever the panel sent while we were off is gone
        port = None
    else:
        channel = TcpServerChannel(args.tcp)
        port = channel.port

    capabilities = [(osdp.Capability.CommunicationSecurity, 1, 1)]
    if args.outputs:
        capabilities.append((osdp.Capability.OutputControl, args.output_level, args.outputs))
    if args.leds:
        capabilities.append((osdp.Capability.LEDControl, 1, args.leds))
    if args.buzzer:
        capabilities.append((osdp.Capability.AudibleControl, 1, 1))
    capabilities.append((osdp.Capability.ContactStatusMonitoring, 1, 4))

    outputs = Outputs(emit)

    def on_command(command: dict[str, Any]) -> tuple[int, Any]:
        now = time.monotonic()
        shown = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in command.items()}
        emit({"command": shown, "t": now})
        if command.get("command") == osdp.Command.Output:
            outputs.command(int(command["output_no"]), int(command["control_code"]), int(command["timer_count"]))
        return 0, None

    flags = [osdp.LibFlag.EnforceSecure] if args.scbk else []
    scbk = bytes.fromhex(args.scbk) if args.scbk else None
    pd = FastPeripheralDevice(
        osdp.PDInfo(args.address, channel, scbk=scbk, flags=flags),
        osdp.PDCapabilities(capabilities),
        log_level=getattr(osdp.LogLevel, args.log_level),
        command_handler=on_command,
    )
    pd.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        for line in sys.stdin:
            line = line.strip()
            if not line:
                continue
            request = json.loads(line)
            if request.get("quit"):
                break
            event = dict(request["event"])
            for key in ("data", "report"):
                if f"{key}_hex" in event:
                    event[key] = bytes.fromhex(event.pop(f"{key}_hex"))
            emit({"submitted": bool(pd.submit_event(event)), "t": time.monotonic()})
        stop.set()

    threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()
    emit({"ready": port})
    online = False
    while not stop.wait(0.02):
        now_online = bool(pd.is_online())
        if now_online != online:
            online = now_online
            emit({"online": online, "secure": bool(pd.is_sc_active()), "t": time.monotonic()})
    pd.stop()
    outputs.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
