"""Stoplight Prism serving a vendor's OpenAPI description: the test double for cloud REST APIs.

``prism mock <spec> --errors`` answers each request with the example of the documented response, and refuses
what the description does not allow: 401 without the security scheme's header, 400/422 for a body, a query or
a path parameter that does not validate (Prism picks 422 if the operation documents one, else 400). The
``Prefer`` request header chooses a documented answer: ``Prefer: code=429`` makes Prism send the operation's
429 response (https://docs.stoplight.io/docs/prism, "Prism Decision Engine").

Prism is installed once under ``~/.cache/campusguard/prism`` (``CAMPUSGUARD_PRISM_HOME`` overrides it) with
``npm install --prefix <there> @stoplight/prism-cli@5``; that needs Node.js 18+ and npm, and the npm registry
the first time. Without npm the tests fail with that message: they do not skip.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import suppress
from pathlib import Path

PACKAGE = "@stoplight/prism-cli@5"
HOME = Path(os.environ.get("CAMPUSGUARD_PRISM_HOME", "~/.cache/campusguard/prism")).expanduser()


def prism_bin(home: Path = HOME) -> Path:
    return home / "node_modules" / ".bin" / "prism"


def ensure_prism(home: Path = HOME, timeout: float = 600.0) -> Path:
    """The prism executable, installed with npm the first time (one install at a time across processes)."""
    binary = prism_bin(home)
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError(
            f"Prism ({PACKAGE}) is not installed in {home} and npm is not on PATH: install Node.js 18+ and npm "
            f"(Debian: nodejs npm), or run `npm install --prefix {home} {PACKAGE}`"
        )
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            done = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "--prefix", str(home), PACKAGE],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if done.returncode != 0 or not binary.exists():
                raise RuntimeError(f"npm install {PACKAGE} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prism:
    """``prism mock SPEC -p PORT -h 127.0.0.1 --errors``, started and stopped for sure."""

    host = "127.0.0.1"

    def __init__(self, spec: Path, *, port: int | None = None, errors: bool = True) -> None:
        self.spec = spec
        self.port = port or free_port()
        self.errors = errors
        self.process: subprocess.Popen[bytes] | None = None
        self._log_dir = tempfile.TemporaryDirectory(prefix="prism-")
        self.log_path = Path(self._log_dir.name) / "prism.log"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def violations(self) -> list[str]:
        """What Prism's validator found wrong in the requests so far, in order (from its log)."""
        return [line.split("Violation: ", 1)[1] for line in self.log().splitlines() if "Violation: " in line]

    def start(self, timeout: float = 60.0) -> Prism:
        argv = [str(ensure_prism()), "mock", str(self.spec), "-p", str(self.port), "-h", self.host]
        if self.errors:
            argv.append("--errors")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                code = self.process.returncode
                self.process = None
                raise RuntimeError(f"prism exited ({code}) before serving {self.spec}:\n{self.log()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prism did not serve {self.spec} within {timeout:g}s:\n{self.log()[-4000:]}")
            time.sleep(0.1)
        return self

    def _answers(self) -> bool:
        # Any HTTP answer means it serves; an unknown path gets Prism's 404 problem+json.
        try:
            with urllib.request.urlopen(f"{self.url}/campusguard-prism-ready", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)  # npm's .bin shim may have started node as a child
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)

    def close(self) -> None:
        self.stop()
        self._log_dir.cleanup()

    def __enter__(self) -> Prism:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
