"""Pending deliveries survive kill -9: a real HTTP receiver gets every incident exactly once (by key)."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FIXTURE = Path(__file__).parent / "fixtures" / "core_with_emitter.py"
SECRET = "durability-secret"


class Receiver:
    """An HTTP endpoint that checks signatures and drops duplicate idempotency keys."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.first_seen: list[str] = []  # keys, in order of first arrival
        self.duplicates = 0
        self.bad_signatures = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                body = self.rfile.read(length)
                if len(body) < length:
                    return  # the sender was killed mid-request (kill -9): nothing to judge
                time.sleep(receiver.delay)  # a slow partner keeps deliveries pending
                expected = (
                    "sha256="
                    + hmac.new(
                        SECRET.encode(), self.headers["X-Campusguard-Timestamp"].encode() + b"." + body, hashlib.sha256
                    ).hexdigest()
                )
                with receiver.lock:
                    if not hmac.compare_digest(expected, self.headers.get("X-Campusguard-Signature", "")):
                        receiver.bad_signatures += 1
                        self.send_response(400)
                        self.end_headers()
                        return
                    key = self.headers["Idempotency-Key"]
                    assert key == json.loads(body)["id"] + ":partner"
                    if key in receiver.first_seen:
                        receiver.duplicates += 1
                    else:
                        receiver.first_seen.append(key)
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def count(self) -> int:
        with self.lock:
            return len(self.first_seen)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(delay=0.03)
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def start_core(config: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(FIXTURE), str(config), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"CG_DURABILITY_SECRET": SECRET, "PATH": "/usr/bin:/bin"},
    )


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def test_pending_deliveries_survive_sigkill(tmp_path: Path, receiver: Receiver) -> None:
    count = 60
    config = tmp_path / "plugins.toml"
    config.write_text(
        f"""
[core]
data_dir = "var"
log_level = "WARNING"

[delivery]
retry_initial = 0.1
retry_max = 0.5

[notifiers.partner]
type = "webhook"
url = "{receiver.url}"
secret = {{ env = "CG_DURABILITY_SECRET" }}
"""
    )
    first = start_core(config, str(count))
    assert first.stdout is not None
    accepted = 0
    for line in first.stdout:  # every incident is durable before we kill
        if line.startswith("accepted "):
            accepted += 1
        if accepted == count:
            break
    wait_for(lambda: receiver.count() >= 10, 20, "the first deliveries")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    delivered_before_kill = receiver.count()
    assert delivered_before_kill < count, "nothing was pending at the kill; the test proves nothing"

    second = start_core(config)
    try:
        wait_for(lambda: receiver.count() == count, 30, f"all {count} deliveries after restart")
    finally:
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=20)
    assert second.returncode == 0, stderr

    expected = [f"dur-{i:04d}:partner" for i in range(count)]
    assert receiver.first_seen == expected  # all of them, in order per target
    assert receiver.bad_signatures == 0
    # At most the one delivery in flight at the kill may arrive twice; the receiver dropped it by key.
    assert receiver.duplicates <= 1


def test_sigterm_and_sigint_stop_cleanly_in_bounded_time(tmp_path: Path) -> None:
    config = tmp_path / "plugins.toml"
    config.write_text("[core]\nshutdown_timeout = 5\n[notifiers.log]\n")
    for sig in (signal.SIGTERM, signal.SIGINT):
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "campusguard"), "run", str(config)],
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stderr is not None
        for line in process.stderr:
            if "running; press Ctrl-C" in line:
                break
        started = time.monotonic()
        process.send_signal(sig)
        _, rest = process.communicate(timeout=10)
        assert process.returncode == 0, rest
        assert time.monotonic() - started < 5
        assert "campusguard stopped" in rest
        assert "still running at exit" not in rest
