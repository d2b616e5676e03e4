"""Start and stop the gst-rtsp-server peer from tests (it runs under the system Python)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from .footage import PEDESTRIANS

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).with_name("rtsp_server.py")
SAMPLE = PEDESTRIANS  # the real footage (see footage.py)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RtspServer:
    """One server process; ``start()`` again after ``kill()`` serves on the same port."""

    def __init__(self, port: int | None = None, *, user: str | None = None, password: str | None = None,
                 file: Path | None = SAMPLE, mounts: int = 1, fps: int = 15, file_mounts: int = 0,
                 aliases: tuple[str, ...] = ()) -> None:  # fmt: skip
        self.port = port or free_port()
        self.user, self.password, self.file, self.mounts, self.fps = user, password, file, mounts, fps
        self.aliases = aliases  # extra paths for the live pattern (e.g. what an ONVIF device advertises)
        self.file_mounts = file_mounts  # /file0 ... /fileN-1: the file, one pipeline per client
        self.process: subprocess.Popen[str] | None = None

    def url(self, mount: str = "live", *, user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/{mount}"

    def start(self, timeout: float = 20.0) -> RtspServer:
        args = [SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port), "--mounts", str(self.mounts)]
        args += ["--fps", str(self.fps)]
        for alias in self.aliases:
            args += ["--alias", alias]
        if self.file:
            args += ["--file", str(self.file), "--file-mounts", str(self.file_mounts)]
        if self.user:
            args += ["--user", self.user, "--password", self.password or ""]
        deadline = time.monotonic() + timeout
        while True:  # the port may linger for a moment after a kill
            self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert self.process.stdout is not None
            line = self.process.stdout.readline()
            if line.startswith("READY"):
                return self
            self.process.wait(5)
            if time.monotonic() > deadline:
                raise RuntimeError(f"RTSP server did not start: {line!r} {self.process.stderr.read()}")  # type: ignore[union-attr]
            time.sleep(0.2)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None
