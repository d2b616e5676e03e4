"""Byte transports for the OSDP bus: an RS-485 serial port (or a pty) and a TCP serial server.

libosdp drives the protocol and calls ``read``/``write``/``flush`` from the panel's worker thread
on every refresh, so each call here is non-blocking and never raises: a broken link reads as
silence, is marked down, and :meth:`Transport.maintain` reopens it with backoff. Pure Python, no
libosdp import (the libosdp ``Channel`` wrapper lives in :mod:`.panel`).
"""

from __future__ import annotations

import errno
import os
import socket
import termios
import time
from abc import ABC, abstractmethod
from pathlib import Path

BAUD_RATES: dict[int, int] = {
    9600: termios.B9600,
    19200: termios.B19200,
    38400: termios.B38400,
    57600: termios.B57600,
    115200: termios.B115200,
    230400: termios.B230400,
}


class Transport(ABC):
    """One OSDP bus. Every method is called from the panel's worker thread only."""

    def __init__(self, *, retry_initial: float = 0.5, retry_max: float = 10.0) -> None:
        self.up = False
        self.error: str | None = None  # why the link is down, for messages
        self.rx_bytes = 0
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._retry_delay = retry_initial
        self._next_attempt = 0.0

    @abstractmethod
    def describe(self) -> str:
        """Where the bus is, for messages (``serial /dev/ttyUSB0 at 9600 baud``)."""

    @abstractmethod
    def _open(self) -> None:
        """Open the link; raise ``OSError`` when it cannot be."""

    @abstractmethod
    def _close(self) -> None:
        """Release the link. Must not raise."""

    @abstractmethod
    def _read(self, max_bytes: int) -> bytes:
        """Non-blocking read; ``b""`` when nothing is waiting; raise ``OSError`` when broken."""

    @abstractmethod
    def _write(self, data: bytes) -> int:
        """Non-blocking write; the count written; raise ``OSError`` when broken."""

    @abstractmethod
    def _discard_input(self) -> None:
        """Drop whatever has been received and not read yet."""

    # -- what the panel calls ---------------------------------------------------------------------

    def open(self) -> None:
        """Open now; raises ``OSError`` with the reason (the first open is the caller's to handle)."""
        self._close()
        try:
            self._open()
        except OSError as exc:
            self._down(exc)
            raise
        self.up = True
        self.error = None
        self._retry_delay = self._retry_initial

    def close(self) -> None:
        self.up = False
        self._close()

    def maintain(self, now: float | None = None) -> bool:
        """Reopen a broken link once its backoff has passed. True when it came back just now."""
        if self.up:
            return False
        now = time.monotonic() if now is None else now
        if now < self._next_attempt:
            return False
        try:
            self.open()
        except OSError:
            return False
        return True

    def read(self, max_bytes: int) -> bytes:
        if not self.up:
            return b""
        try:
            data = self._read(max_bytes)
        except OSError as exc:
            self._down(exc)
            return b""
        self.rx_bytes += len(data)
        return data

    def write(self, data: bytes) -> int:
        if not self.up:
            return 0
        try:
            return self._write(data)
        except OSError as exc:
            self._down(exc)
            return 0

    def flush(self) -> None:
        if not self.up:
            return
        try:
            self._discard_input()
        except OSError as exc:
            self._down(exc)

    def _down(self, exc: BaseException | str) -> None:
        self.up = False
        self.error = exc if isinstance(exc, str) else _reason(exc)
        self._close()
        self._next_attempt = time.monotonic() + self._retry_delay
        self._retry_delay = min(self._retry_delay * 2, self._retry_max)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class SerialTransport(Transport):
    """An RS-485 adapter (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``) or a pty, raw 8N1."""

    def __init__(self, device: Path, baud: int, **kwargs: float) -> None:
        super().__init__(**kwargs)
        if baud not in BAUD_RATES:
            raise ValueError(f"unsupported baud rate {baud}; use one of {sorted(BAUD_RATES)}")
        self.device = device
        self.baud = baud
        self._fd = -1

    def describe(self) -> str:
        return f"serial {self.device} at {self.baud} baud"

    def _open(self) -> None:
        fd = os.open(self.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            speed = BAUD_RATES[self.baud]
            attrs = termios.tcgetattr(fd)
            attrs[0] = 0  # iflag: no translation, no flow control
            attrs[1] = 0  # oflag: raw output
            attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL  # 8N1, ignore modem lines
            attrs[3] = 0  # lflag: no echo, no canonical mode, no signals
            attrs[4] = speed
            attrs[5] = speed
            attrs[6][termios.VMIN] = 0
            attrs[6][termios.VTIME] = 0
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
            termios.tcflush(fd, termios.TCIOFLUSH)
        except (OSError, termios.error) as exc:
            os.close(fd)
            if isinstance(exc, termios.error):
                raise OSError(errno.ENOTTY, f"not a serial port: {exc}") from None
            raise
        self._fd = fd

    def _close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def _read(self, max_bytes: int) -> bytes:
        try:
            return os.read(self._fd, max_bytes)
        except BlockingIOError:
            return b""

    def _write(self, data: bytes) -> int:
        try:
            return os.write(self._fd, data)
        except BlockingIOError:
            return 0

    def _discard_input(self) -> None:
        try:
            termios.tcflush(self._fd, termios.TCIFLUSH)
        except termios.error as exc:
            raise OSError(errno.EIO, str(exc)) from None


class TcpTransport(Transport):
    """A serial-device server (RS-485 to TCP converter) that the panel connects to as a client."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 2.0, **kwargs: float) -> None:
        super().__init__(**kwargs)
        self.host = host
        self.port = port
        self.connect_timeout = connect_timeout
        self._sock: socket.socket | None = None

    def describe(self) -> str:
        return f"tcp {self.host}:{self.port}"

    def _open(self) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock

    def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _read(self, max_bytes: int) -> bytes:
        assert self._sock is not None
        try:
            data = self._sock.recv(max_bytes)
        except BlockingIOError:
            return b""
        if not data:
            raise ConnectionResetError(errno.ECONNRESET, "the serial server closed the connection")
        return data

    def _write(self, data: bytes) -> int:
        assert self._sock is not None
        try:
            return self._sock.send(data)
        except BlockingIOError:
            return 0

    def _discard_input(self) -> None:
        assert self._sock is not None
        while True:
            try:
                data = self._sock.recv(4096)
            except BlockingIOError:
                return
            if not data:
                raise ConnectionResetError(errno.ECONNRESET, "the serial server closed the connection")
