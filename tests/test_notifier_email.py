"""The email notifier against a real SMTP server (aiosmtpd on a loopback port), through a real core."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

import campusguard.plugins.notifiers.hooks as builtin_notifiers
from campusguard.plugins.notifiers.email import EmailNotifier, message_id
from campusguard.sdk import AuthFailed, Evidence, Incident, IncidentChange, IncidentStatus, NotReady
from campusguard.sdk.testing import make_context, make_incident
from campusguard.sdk.testing.conformance import ErrorMapping, NotifierConformance

PASSWORD = "correct horse"
SENDER = "Campus Safety <alerts@school.example>"
OFFICE = "office@school.example"
PRINCIPAL = "principal@school.example"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


class SmtpPeer:
    """A real SMTP server in its own thread: optional AUTH and TLS, refusable recipients; keeps every mail."""

    def __init__(
        self,
        port: int | None = None,
        *,
        users: dict[str, str] | None = None,
        refuse: set[str] | None = None,
        tls: ssl.SSLContext | None = None,
        implicit_tls: bool = False,
        auth_without_tls: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.users = users
        self.refuse = refuse or set()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        kwargs: dict[str, Any] = {"auth_require_tls": not auth_without_tls}
        if users is not None:
            kwargs["authenticator"] = self._authenticate  # AUTH offered without TLS: a test peer only
        if tls is not None and implicit_tls:
            kwargs["ssl_context"] = tls
        elif tls is not None:
            kwargs.update(tls_context=tls, require_starttls=True)
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: object
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and (self.users or {}).get(auth_data.login.decode()) == auth_data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.lock:
            self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"

    def mails(self) -> list[Received]:
        with self.lock:
            return list(self.received)

    def __enter__(self) -> SmtpPeer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def write_snapshot(folder: Path) -> tuple[Path, str]:
    """A small real JPEG (what the evidence recorder writes) and its sha256."""
    image = np.zeros((120, 160, 3), np.uint8)
    cv2.rectangle(image, (40, 30), (120, 100), (0, 200, 255), -1)
    ok, encoded = cv2.imencode(".jpg", image)
    assert ok
    path = folder / "snapshot.jpg"
    path.write_bytes(encoded.tobytes())
    return path, hashlib.sha256(encoded.tobytes()).hexdigest()


def options(port: int, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "security": "none",
        "sender": SENDER,
        "recipients": [OFFICE, PRINCIPAL],
    }
    values.update(overrides)
    return values


def notifier(tmp_path: Path, **config: Any) -> EmailNotifier:
    return EmailNotifier("mail", EmailNotifier.Config.model_validate(config), make_context("mail", tmp_path))


async def send(tmp_path: Path, incident: Incident, **config: Any) -> None:
    mailer = notifier(tmp_path, **config)
    await mailer.start()
    try:
        await mailer.notify(incident)
    finally:
        await mailer.stop()


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")  # type: ignore[attr-defined]


def attachments(message: EmailMessage) -> list[tuple[str | None, str, bytes]]:
    return [(a.get_filename(), a.get_content_type(), a.get_payload(decode=True)) for a in message.iter_attachments()]  # type: ignore[misc]


CORE_CONFIG = """
[delivery]
retry_initial = 0.1
retry_max = 0.3
poll_interval = 0.1

[notifiers.mail]
type = "email"
host = "127.0.0.1"
port = {port}
security = "none"
username = "alerts"
password = {{ env = "CG_TEST_SMTP_PASSWORD" }}
sender = "{sender}"
recipients = ["{office}", "{principal}"]
"""


def core_config(port: int) -> str:
    return CORE_CONFIG.format(port=port, sender=SENDER, office=OFFICE, principal=PRINCIPAL)


@pytest.fixture
def smtp_auth() -> Iterator[SmtpPeer]:
    with SmtpPeer(users={"alerts": PASSWORD}) as peer:
        yield peer


# -- the SDK's contract --------------------------------------------------------------------------


@pytest.mark.usefixtures("smtp_auth")
class TestEmailNotifier(NotifierConformance, ErrorMapping):
    component_class = EmailNotifier
    port: ClassVar[int] = 0

    @pytest.fixture(autouse=True)
    def _peer_port(self, smtp_auth: SmtpPeer) -> None:
        type(self).port = smtp_auth.port

    def valid_config(self) -> dict[str, Any]:
        return options(self.port, username="alerts", password=PASSWORD)

    def unreachable_config(self) -> dict[str, Any]:
        return options(free_port(), timeout=1)

    def bad_credentials_config(self) -> dict[str, Any]:
        return options(self.port, username="alerts", password="wrong")


# -- through a real core -------------------------------------------------------------------------


async def test_incident_arrives_as_mail_with_snapshot_and_updates_thread(
    campusguard_core: Any, smtp_auth: SmtpPeer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CG_TEST_SMTP_PASSWORD", PASSWORD)
    jpeg, sha = write_snapshot(tmp_path)
    async with campusguard_core(core_config(smtp_auth.port), plugins={"notifiers": builtin_notifiers}) as core:
        assert core.state("notifiers", "mail") == "loaded", core.error("notifiers", "mail")
        raised = await core.api.raise_incident(
            make_incident(evidence=Evidence(snapshot_path=str(jpeg), snapshot_sha256=sha))
        )
        await core.wait_delivered("mail", 1)
        update = raised.model_copy(
            update={"revision": 1, "change": IncidentChange.RESOLVED, "status": IncidentStatus.RESOLVED}
        )
        await core.api.raise_incident(update)
        await core.wait_delivered("mail", 2)

    first, second = smtp_auth.mails()
    assert first.mail_from == "alerts@school.example"
    assert first.rcpt_tos == [OFFICE, PRINCIPAL]
    mail = first.message
    assert mail["Subject"] == "SEVERE intrusion: Person in the east courtyard after hours"
    assert mail["From"] == SENDER
    assert mail["Message-ID"] == f"<{raised.id}.mail@school.example>"
    assert mail["X-Campusguard-Exercise"] == "false"
    body = text_of(mail)
    for fact in ("intrusion", "SEVERE", "test-camera", "courtyard", "90%", raised.id, "Raised at:"):
        assert fact in body
    assert "EXERCISE" not in body
    ((name, mimetype, data),) = attachments(mail)
    assert (name, mimetype) == (f"{raised.id}-snapshot.jpg", "image/jpeg")
    assert data == jpeg.read_bytes()
    assert mail.get_body(("html",)) is not None

    # The resolution replies to the first mail, so mail clients show one thread.
    reply = second.message
    assert reply["Subject"] == "Re: SEVERE intrusion: Person in the east courtyard after hours"
    assert reply["Message-ID"] == f"<{raised.id}.1.mail@school.example>"
    assert reply["In-Reply-To"] == reply["References"] == mail["Message-ID"]
    assert text_of(reply).startswith("UPDATE: resolved\n")


async def test_wrong_password_fails_the_notifier_and_keeps_the_delivery(
    campusguard_core: Any, smtp_auth: SmtpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CG_TEST_SMTP_PASSWORD", "wrong")
    async with campusguard_core(core_config(smtp_auth.port), plugins={"notifiers": builtin_notifiers}) as core:
        await core.api.raise_incident(make_incident())
        await wait_until(lambda: core.state("notifiers", "mail") == "failed", 5, "the notifier to fail")
        error = core.error("notifiers", "mail")
        assert f"SMTP 127.0.0.1:{smtp_auth.port} refused the login of 'alerts': 535" in error
        assert "wrong" not in error and PASSWORD not in error
        counts = await core.api.store.delivery_counts()
        assert counts["mail"] == {"pending": 1}
    assert smtp_auth.mails() == []


async def test_unreachable_server_is_retried_until_it_comes_up(
    campusguard_core: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = free_port()
    with pytest.raises(NotReady, match=f"SMTP server 127.0.0.1:{port} unreachable"):
        await send(tmp_path, make_incident(), **options(port, timeout=1))

    monkeypatch.setenv("CG_TEST_SMTP_PASSWORD", PASSWORD)
    async with campusguard_core(core_config(port), plugins={"notifiers": builtin_notifiers}) as core:
        incident = await core.api.raise_incident(make_incident())
        await wait_until(lambda: core.api.workers["mail"].failures >= 2, 5, "failed attempts")
        with SmtpPeer(port, users={"alerts": PASSWORD}) as peer:
            await core.wait_delivered("mail", 1, timeout=5)
        assert core.state("notifiers", "mail") == "loaded"
    ((mail,),) = [peer.mails()]
    assert mail.message["Message-ID"] == f"<{incident.id}.mail@school.example>"


# -- the message ---------------------------------------------------------------------------------


async def test_exercise_is_marked_in_subject_and_body(tmp_path: Path) -> None:
    with SmtpPeer() as peer:
        await send(tmp_path, make_incident(exercise=True), **options(peer.port, subject="{kind} at {zone}"))
    mail = peer.mails()[0].message
    assert mail["Subject"] == "[EXERCISE] intrusion at courtyard"
    assert mail["X-Campusguard-Exercise"] == "true"
    body = text_of(mail)
    assert body.startswith("*** EXERCISE - THIS IS A DRILL, NOT A REAL EMERGENCY ***")
    assert body.rstrip().endswith("*** EXERCISE - THIS IS A DRILL, NOT A REAL EMERGENCY ***")


@pytest.mark.parametrize("damage", ["missing", "altered", "no checksum"])
async def test_bad_snapshot_is_left_out_and_the_mail_says_so(tmp_path: Path, damage: str) -> None:
    jpeg, sha = write_snapshot(tmp_path)
    if damage == "missing":
        jpeg.unlink()
    elif damage == "altered":
        jpeg.write_bytes(jpeg.read_bytes() + b"tampered")
    evidence = Evidence(snapshot_path=str(jpeg), snapshot_sha256=None if damage == "no checksum" else sha)
    with SmtpPeer() as peer:
        await send(tmp_path, make_incident(evidence=evidence), **options(peer.port))
    mail = peer.mails()[0].message
    assert attachments(mail) == []
    expected = {
        "missing": "Snapshot not attached: snapshot.jpg is missing on the server.",
        "altered": "Snapshot not attached: snapshot.jpg does not match its recorded checksum.",
        "no checksum": "Snapshot not attached: no checksum was recorded for it.",
    }[damage]
    assert expected in text_of(mail)
    assert str(tmp_path) not in text_of(mail)  # no server paths in mail


async def test_refused_recipient_is_named_and_only_it_is_retried(tmp_path: Path) -> None:
    incident = make_incident()
    with SmtpPeer(refuse={PRINCIPAL}) as peer:
        mailer = notifier(tmp_path, **options(peer.port))
        await mailer.start()
        try:
            with pytest.raises(NotReady, match=f"refused recipient {PRINCIPAL} \\(550 5.1.1 mailbox unavailable\\)"):
                await mailer.notify(incident)
            peer.refuse.clear()
            await mailer.notify(incident)  # the outbox's retry
        finally:
            await mailer.stop()
    first, retry = peer.mails()
    assert first.rcpt_tos == [OFFICE]
    assert retry.rcpt_tos == [PRINCIPAL]  # the office is not mailed twice
    assert first.message["Message-ID"] == retry.message["Message-ID"]


async def test_every_recipient_refused_is_not_ready(tmp_path: Path) -> None:
    with SmtpPeer(refuse={OFFICE}) as peer, pytest.raises(NotReady, match=f"refused every recipient: {OFFICE}"):
        await send(tmp_path, make_incident(), **options(peer.port, recipients=[OFFICE]))


def test_message_id_is_valid_for_any_notifier_name() -> None:
    assert message_id("abc:2:Front Office", "school.example") == "<abc.2.Front-Office@school.example>"


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"username": "alerts"}, "username and password go together"),
        ({"recipients": ["office"]}, "'office' is not an email address"),
        ({"recipients": ["a@school.example, b@school.example"]}, "holds more than one address"),
        ({"recipients": []}, "at least 1 item"),
        ({"sender": "alerts@school.example\nBcc: x@evil.example"}, "line break"),
        ({"subject": "{title} on {camera}"}, "unknown field 'camera'"),
        ({"security": "ssl"}, "'starttls', 'tls' or 'none'"),
    ],
)
def test_config_errors(overrides: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        EmailNotifier.Config.model_validate(options(25, **overrides))


# -- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ssl.SSLContext]:
    """A self-signed certificate for 127.0.0.1 (a school's own mail relay often has one)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_tls_with_a_private_certificate(
    tmp_path: Path, certificate: tuple[Path, ssl.SSLContext], security: str
) -> None:
    cert, context = certificate
    with SmtpPeer(users={"alerts": PASSWORD}, tls=context, implicit_tls=security == "tls") as peer:
        config = options(peer.port, security=security, username="alerts", password=PASSWORD)
        with pytest.raises(NotReady, match="CERTIFICATE_VERIFY_FAILED"):
            await send(tmp_path, make_incident(), **config)
        await send(tmp_path, make_incident(), **config, ca_file=cert)
    assert len(peer.mails()) == 1


async def test_starttls_required_but_not_offered(tmp_path: Path) -> None:
    with SmtpPeer() as peer, pytest.raises(NotReady, match="STARTTLS"):
        await send(tmp_path, make_incident(), **options(peer.port, security="starttls"))


async def test_login_over_plain_smtp_without_auth_offered_is_auth_failed(tmp_path: Path) -> None:
    # Many relays offer AUTH only after STARTTLS: retrying will not help, so it stops the notifier.
    with SmtpPeer(auth_without_tls=False) as peer, pytest.raises(AuthFailed, match=r"offers no login.*STARTTLS"):
        await send(tmp_path, make_incident(), **options(peer.port, username="alerts", password=PASSWORD))
