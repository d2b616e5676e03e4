"""The Apprise notifier against real peers: mailto:// to aiosmtpd and json:// to a local HTTP receiver."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import ValidationError
from test_notifier_email import SmtpPeer, attachments, text_of, write_snapshot

import campusguard.plugins.notifiers.hooks as builtin_notifiers
from campusguard.plugins.notifiers.apprise_notifier import AppriseNotifier, notify_type, secret_parts
from campusguard.sdk import ConfigError, Evidence, IncidentChange, NotReady, Severity
from campusguard.sdk.testing import make_context, make_incident
from campusguard.sdk.testing.conformance import NotifierConformance

TOKEN = "s3cr3t-t0ken"  # the part of an Apprise URL that must never reach a log or an error


class JsonReceiver:
    """A real HTTP endpoint: answers each POST with the next queued status (200 when none); keeps bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    if status < 300:
                        receiver.bodies.append(body)
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str = "hook") -> str:
        return f"json://cg:{TOKEN}@127.0.0.1:{self.port}/{path}"

    def received(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.bodies)


@pytest.fixture
def receiver() -> Iterator[JsonReceiver]:
    r = JsonReceiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def smtp() -> Iterator[SmtpPeer]:
    with SmtpPeer() as peer:
        yield peer


def mailto(peer: SmtpPeer) -> str:
    return f"mailto://127.0.0.1:{peer.port}?to=office@school.example&from=alerts@school.example&secure=no"


def notifier(tmp_path: Path, *urls: str) -> AppriseNotifier:
    config = AppriseNotifier.Config.model_validate({"urls": list(urls)})
    return AppriseNotifier("apprise", config, make_context("apprise", tmp_path))


class TestAppriseNotifier(NotifierConformance):
    component_class = AppriseNotifier
    url: ClassVar[str] = ""

    @pytest.fixture(autouse=True)
    def _receiver_url(self, receiver: JsonReceiver) -> None:
        type(self).url = receiver.url()

    def valid_config(self) -> dict[str, Any]:
        return {"urls": [self.url]}


async def test_incident_reaches_json_and_mail_with_snapshot(
    campusguard_core: Any, receiver: JsonReceiver, smtp: SmtpPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CG_TEST_APPRISE_JSON", receiver.url())
    monkeypatch.setenv("CG_TEST_APPRISE_MAIL", mailto(smtp))
    config = """
[notifiers.phones]
type = "apprise"
urls = [{ env = "CG_TEST_APPRISE_JSON" }, { env = "CG_TEST_APPRISE_MAIL" }]
"""
    jpeg, sha = write_snapshot(tmp_path)
    async with campusguard_core(config, plugins={"notifiers": builtin_notifiers}) as core:
        assert core.state("notifiers", "phones") == "loaded", core.error("notifiers", "phones")
        incident = await core.api.raise_incident(
            make_incident(evidence=Evidence(snapshot_path=str(jpeg), snapshot_sha256=sha))
        )
        await core.wait_delivered("phones", 1, timeout=10)

    ((posted,),) = [receiver.received()]
    assert posted["title"] == "SEVERE intrusion: Person in the east courtyard after hours"
    assert posted["type"] == "failure"  # severe
    for fact in ("What:       intrusion", "Camera:     test-camera", "Zone:       courtyard", incident.id):
        assert fact in posted["message"]
    ((attached,),) = [posted["attachments"]]
    assert attached["filename"] == f"{incident.id}-snapshot.jpg"
    assert attached["mimetype"] == "image/jpeg"
    assert base64.b64decode(attached["base64"]) == jpeg.read_bytes()

    ((mail,),) = [smtp.mails()]
    assert mail.rcpt_tos == ["office@school.example"]
    assert mail.message["Subject"] == posted["title"]
    assert incident.id in text_of(mail.message)
    ((name, mimetype, data),) = attachments(mail.message)
    assert (name, mimetype, data) == (f"{incident.id}-snapshot.jpg", "image/jpeg", jpeg.read_bytes())


async def test_exercise_title_and_body(receiver: JsonReceiver, tmp_path: Path) -> None:
    sender = notifier(tmp_path, receiver.url())
    await sender.start()
    try:
        await sender.notify(make_incident(exercise=True))
    finally:
        await sender.stop()
    ((posted,),) = [receiver.received()]
    assert posted["title"].startswith("[EXERCISE] SEVERE intrusion")
    assert posted["message"].startswith("*** EXERCISE - THIS IS A DRILL, NOT A REAL EMERGENCY ***")


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (f"jsonn://cg:{TOKEN}@127.0.0.1/x", "apprise url 1: unknown scheme 'jsonn://' (did you mean 'json://'?)"),
        (f"mailto://{TOKEN}?to=office", "apprise url 1 (mailto://...): it is not a valid E-Mail URL for Apprise"),
    ],
)
async def test_a_bad_url_fails_start_clearly(campusguard_core: Any, url: str, error: str, monkeypatch: Any) -> None:
    monkeypatch.setenv("CG_TEST_APPRISE_URL", url)
    config = '[notifiers.phones]\ntype = "apprise"\nurls = [{ env = "CG_TEST_APPRISE_URL" }]\n'
    async with campusguard_core(config, plugins={"notifiers": builtin_notifiers}) as core:
        assert core.state("notifiers", "phones") == "setup_error"
        message = core.error("notifiers", "phones")
        assert message.startswith("ConfigError: ")
        assert error in message
        assert TOKEN not in message


async def test_a_bad_url_is_a_config_error_raised_by_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown scheme 'slakc://' \\(did you mean 'slack://'\\?\\)"):
        await notifier(tmp_path, f"slakc://{TOKEN}/B000/XXXX").start()


async def test_failure_is_not_ready_without_the_token_and_only_failed_urls_are_retried(
    receiver: JsonReceiver, tmp_path: Path
) -> None:
    receiver.statuses = [200, 500]  # the URLs are sent to concurrently: one of them gets the 500
    sender = notifier(tmp_path, receiver.url("first"), receiver.url("second"))
    incident = make_incident()
    await sender.start()
    try:
        with pytest.raises(NotReady) as failed:
            await sender.notify(incident)
        assert len(receiver.received()) == 1
        await sender.notify(incident)  # the outbox's retry reaches only the URL that failed
    finally:
        await sender.stop()
    message = str(failed.value)
    assert message.startswith("apprise: 1 of 2 URLs failed: url ")
    assert "(json://...) failure" in message
    assert TOKEN not in message and "first" not in message and "second" not in message
    assert len(receiver.received()) == 2  # each URL got it once


async def test_unreachable_receiver_is_not_ready(tmp_path: Path) -> None:
    sender = notifier(tmp_path, f"json://cg:{TOKEN}@127.0.0.1:9/hook")
    await sender.start()
    try:
        with pytest.raises(NotReady, match=r"url 1 \(json://\.\.\.\) failure: A Connection error") as failed:
            await sender.notify(make_incident())
    finally:
        await sender.stop()
    assert TOKEN not in str(failed.value)


def test_redaction_covers_every_token_like_part() -> None:
    assert {"T000", "B000", TOKEN} <= secret_parts(f"slack://T000/B000/{TOKEN}")
    assert {"123456", TOKEN} <= secret_parts(f"discord://123456/{TOKEN}")
    assert {"123456789", TOKEN} <= secret_parts(f"tgram://123456789:{TOKEN}/-100123")
    parts = secret_parts(f"json://u:{TOKEN}@127.0.0.1:8080/hook")
    assert TOKEN in parts and "127.0.0.1" not in parts and "8080" not in parts


def test_notify_type_follows_severity_and_all_clear() -> None:
    assert notify_type(make_incident(severity=Severity.INFO)) == "info"
    assert notify_type(make_incident(severity=Severity.MODERATE)) == "warning"
    assert notify_type(make_incident(severity=Severity.EXTREME)) == "failure"
    resolved = make_incident(severity=Severity.EXTREME, revision=1, change=IncidentChange.RESOLVED)
    assert notify_type(resolved) == "success"


def test_config_checks_urls_without_showing_them() -> None:
    with pytest.raises(ValidationError, match="url 2 is not an Apprise URL") as failed:
        AppriseNotifier.Config.model_validate({"urls": ["json://127.0.0.1/x", f"hooks.slack.com/{TOKEN}"]})
    assert TOKEN not in str(failed.value)
    with pytest.raises(ValidationError, match="unknown field 'camera'"):
        AppriseNotifier.Config.model_validate({"urls": ["json://127.0.0.1/x"], "title": "{camera}"})
    assert "**********" in repr(AppriseNotifier.Config.model_validate({"urls": [f"json://{TOKEN}@h/x"]}))


async def test_snapshot_problem_is_said_in_the_body(receiver: JsonReceiver, tmp_path: Path) -> None:
    jpeg, _ = write_snapshot(tmp_path)
    sender = notifier(tmp_path, receiver.url())
    await sender.start()
    try:
        await sender.notify(make_incident(evidence=Evidence(snapshot_path=str(jpeg), snapshot_sha256="0" * 64)))
    finally:
        await sender.stop()
    ((posted,),) = [receiver.received()]
    assert posted["attachments"] == []
    assert "Snapshot not attached: snapshot.jpg does not match its recorded checksum." in posted["message"]
