"""SIPp (Debian ``sip-tester``) as the PSAP: a UAS that answers one SIP MESSAGE per a scenario in
``tests/fixtures/sipp``, and records every message it saw (``-trace_msg``) for the test to read.
"""

from __future__ import annotations

import asyncio
import errno
import re
import shutil
import socket
import subprocess
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType

SIPP = shutil.which("sipp") or "/usr/bin/sipp"
SCENARIOS = Path(__file__).resolve().parents[1] / "fixtures" / "sipp"


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bound(port: int, kind: int) -> bool:
    """Whether something holds ``port`` (our own bind attempt fails with EADDRINUSE)."""
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


class Sipp:
    """``async with Sipp("message_200.xml", tmp_path, "udp") as psap:`` then ``psap.uri`` and ``await psap.done()``."""

    host = "127.0.0.1"

    def __init__(self, scenario: str, folder: Path, transport: str = "udp") -> None:
        self.scenario = SCENARIOS / scenario
        self.folder = folder
        self.transport = transport
        self.kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
        self.port = free_port(self.kind)
        self.message_file = folder / f"sipp-{self.port}-messages.log"
        self.error_file = folder / f"sipp-{self.port}-errors.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        return f"sip:psap@{self.host}:{self.port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        self.folder.mkdir(parents=True, exist_ok=True)
        return subprocess.Popen(
            [SIPP, "-sf", str(self.scenario), "-i", self.host, "-p", str(self.port),
             "-t", "u1" if self.transport == "udp" else "t1", "-m", "1", "-nostdin",
             "-trace_msg", "-message_file", str(self.message_file),
             "-trace_err", "-error_file", str(self.error_file),
             "-timeout", "30s", "-timeout_error"],
            cwd=self.folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip

    async def __aenter__(self) -> Sipp:
        self.process = self._spawn()  # starts at once; waiting for it to bind is async below
        deadline = time.monotonic() + 10
        while not _bound(self.port, self.kind):
            if self.process.poll() is not None:
                raise RuntimeError(f"sipp exited with {self.process.returncode}: {self._stderr()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"sipp did not bind {self.transport} port {self.port}")
            await asyncio.sleep(0.02)
        return self

    async def done(self, timeout: float = 15.0) -> int:
        """Wait until SIPp ended its one call and exited; its exit status (0: the scenario passed)."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sipp still running after {timeout:g}s")
            await asyncio.sleep(0.02)
        return self.process.returncode

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()

    def _stderr(self) -> str:
        if self.process is None or self.process.stderr is None:
            return ""
        return self.process.stderr.read().decode(errors="replace")[-2000:]

    def received(self) -> list[bytes]:
        """Every SIP message SIPp received, byte for byte (the log gives each one's length)."""
        if not self.message_file.exists():
            return []
        log = self.message_file.read_bytes()
        # Each entry: a dashed line with the time, "<TRANSPORT> message received [<n>] bytes :", a blank line, the text.
        return [log[m.end() : m.end() + int(m[1])] for m in _RECEIVED.finditer(log)]


_RECEIVED = re.compile(rb"message received \[(\d+)\] bytes :\n\n")


def split_message(raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """A SIP request as (request line, headers by lower-case name, body)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return lines[0], headers, body


def body_parts(content_type: str, body: bytes) -> list[EmailMessage]:
    """The parts of a multipart body, parsed by the standard library's MIME parser."""
    message = message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=policy.default)
    assert isinstance(message, EmailMessage) and message.is_multipart(), f"not multipart: {content_type}"
    return [part for part in message.iter_parts() if isinstance(part, EmailMessage)]
