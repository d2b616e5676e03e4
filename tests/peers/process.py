"""A peer subprocess that prints ``READY ...`` once it serves, and is stopped for sure."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

PEERS = Path(__file__).resolve().parent


class PeerProcess:
    def __init__(self, argv: Sequence[str], *, cwd: Path | None = None) -> None:
        self.argv = list(argv)
        self.cwd = cwd
        self.process: subprocess.Popen[str] | None = None
        self.ready_line = ""

    def start(self, timeout: float = 20.0) -> PeerProcess:
        self.process = subprocess.Popen(
            self.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=self.cwd, start_new_session=True
        )
        assert self.process.stdout is not None
        # Kill the process if it has not said READY in time, so readline() cannot block forever.
        watchdog = threading.Timer(timeout, self.process.kill)
        watchdog.start()
        try:
            self.ready_line = self.process.stdout.readline().strip()
        finally:
            watchdog.cancel()
        if not self.ready_line.startswith("READY"):
            self.process.kill()
            _, errors = self.process.communicate(timeout=5)
            self.process = None
            raise RuntimeError(f"{self.argv} did not start: {self.ready_line!r}\n{errors}")
        return self

    @property
    def port(self) -> int:
        return int(self.ready_line.split()[1])

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            # `ip netns exec` execs the program in place, so this signals the peer itself.
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def ipycam_argv(host: str, *, user: str = "admin", password: str = "secret", extra: Sequence[str] = ()) -> list[str]:
    """The ipycam peer's command line. Run it with ``cwd`` set to a temporary folder: ipycam keeps
    its PTZ presets in ``ptz_presets.json`` in the working directory."""
    return [
        sys.executable,
        str(PEERS / "ipycam_peer.py"),
        "--host",
        host,
        "--user",
        user,
        "--password",
        password,
        *extra,
    ]
