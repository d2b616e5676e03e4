"""The built-in notifiers pass the SDK's own conformance suites, against a real HTTP peer."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from campusguard.plugins.notifiers.log import LogNotifier
from campusguard.plugins.notifiers.webhook import WebhookNotifier, sign
from campusguard.sdk.testing import make_context, make_incident
from campusguard.sdk.testing.conformance import ErrorMapping, NotifierConformance


class Peer:
    """A real HTTP server: 401 without the right bearer header, 204 otherwise; records requests."""

    requests: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def __init__(self) -> None:
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                requests.append((dict(self.headers), body))
                ok = self.headers.get("Authorization") == "Bearer right"
                self.send_response(204 if ok else 401)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    p = Peer()
    yield p
    p.server.shutdown()
    p.server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class TestLogNotifier(NotifierConformance):
    component_class = LogNotifier


@pytest.mark.usefixtures("peer")
class TestWebhookNotifier(NotifierConformance, ErrorMapping):
    component_class = WebhookNotifier
    url: ClassVar[str] = ""

    @pytest.fixture(autouse=True)
    def _peer_url(self, peer: Peer) -> None:
        type(self).url = peer.url

    def valid_config(self) -> dict[str, Any]:
        return {"url": self.url, "headers": {"Authorization": "Bearer right"}, "secret": "k"}

    def unreachable_config(self) -> dict[str, Any]:
        return {"url": f"http://127.0.0.1:{closed_port()}/hook", "timeout": 1}

    def bad_credentials_config(self) -> dict[str, Any]:
        return {"url": self.url, "headers": {"Authorization": "Bearer wrong"}}


async def test_webhook_sends_signed_body_with_key_and_exercise_flag(peer: Peer, tmp_path: Any) -> None:
    Peer.requests.clear()
    config = WebhookNotifier.Config.model_validate(
        {"url": peer.url, "secret": "topsecret", "headers": {"Authorization": "Bearer right"}}
    )
    notifier = WebhookNotifier("office", config, make_context("office", tmp_path))
    incident = make_incident(exercise=True)
    await notifier.start()
    try:
        await notifier.notify(incident)
    finally:
        await notifier.stop()
    ((headers, body),) = Peer.requests
    assert headers["Idempotency-Key"] == f"{incident.id}:office"
    assert headers["X-Campusguard-Exercise"] == "true"
    assert headers["X-Campusguard-Signature"] == sign("topsecret", headers["X-Campusguard-Timestamp"], body)
    expected = hmac.new(b"topsecret", headers["X-Campusguard-Timestamp"].encode() + b"." + body, hashlib.sha256)
    assert headers["X-Campusguard-Signature"] == "sha256=" + expected.hexdigest()
    assert json.loads(body)["exercise"] is True


async def test_log_notifier_marks_exercises(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    notifier = LogNotifier("log", LogNotifier.Config(), make_context("log", tmp_path))
    incident = make_incident(exercise=True)
    await notifier.notify(incident)
    assert f"[EXERCISE] incident intrusion {incident.id}" in caplog.text
