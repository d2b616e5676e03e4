"""Send each incident as an email over SMTP (aiosmtplib), with the verified snapshot attached.

The Message-ID comes from the delivery key, so a retried delivery is the same message to the
receiving side; later changes of an incident reply to the first mail, so clients thread them.
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

from campusguard.sdk import AuthFailed, Incident, Notifier, NotReady

from .message import DEFAULT_SUBJECT, Snapshot, body_html, body_text, check_template, load_snapshot, subject

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
AUTH_REFUSED = (530, 534, 535)  # 454 is a temporary auth failure: retried like any other
_NOT_IN_MSGID = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]")
_REMEMBERED = 1000  # deliveries whose accepted recipients are remembered between retries


def address_of(value: str) -> str:
    """The bare address of ``value`` (``"Office <a@b.org>"`` -> ``a@b.org``); ValueError if it is none."""
    if "\r" in value or "\n" in value:
        raise ValueError("an address cannot contain a line break")
    if len(getaddresses([value])) != 1:
        raise ValueError(f"{value!r} holds more than one address: list each one separately")
    _, addr = parseaddr(value)
    local, at, domain = addr.rpartition("@")
    if not at or not local or "." not in domain.strip("."):
        raise ValueError(f"{value!r} is not an email address (expected name@domain)")
    return addr


def message_id(key: str, domain: str) -> str:
    """``<id.revision.target@domain>``: the delivery key made a valid Message-ID (no ``:``)."""
    return f"<{_NOT_IN_MSGID.sub('-', key.replace(':', '.'))}@{domain}>"


class EmailNotifier(Notifier):
    """One mail per delivery, to every recipient; marked ``[EXERCISE]`` for drills."""

    kind = "email"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # the password

        host: str = Field(min_length=1, description="SMTP server name or address")
        port: int | None = Field(
            default=None, ge=1, le=65535, description="default: 587 for starttls, 465 for tls, 25 for none"
        )
        security: Literal["starttls", "tls", "none"] = Field(
            default="starttls", description="starttls (upgrade, required), tls (implicit, port 465) or none"
        )
        username: str | None = None
        password: SecretStr | None = Field(default=None, validate_default=True, description='use { env = "NAME" }')
        sender: str = Field(description='From: "alerts@school.org" or "Campus Safety <alerts@school.org>"')
        recipients: list[str] = Field(min_length=1, description="To: addresses, one per entry")
        subject: str = Field(
            default=DEFAULT_SUBJECT,
            description="template over the incident's fields (docs/notifiers.md); drills always get [EXERCISE]",
        )
        html: bool = Field(default=True, description="add an HTML part next to the plain text")
        attach_snapshot: bool = Field(default=True, description="attach the snapshot when its checksum matches")
        timeout: float = Field(default=5.0, gt=0, description="seconds per SMTP step (connect, each command)")
        validate_certs: bool = Field(default=True, description="check the server's TLS certificate")
        ca_file: Path | None = Field(default=None, description="CA bundle for a server with a private certificate")

        @field_validator("sender")
        @classmethod
        def _one_address(cls, value: str) -> str:
            address_of(value)
            return value

        @field_validator("recipients")
        @classmethod
        def _addresses(cls, value: list[str]) -> list[str]:
            for item in value:
                address_of(item)
            return value

        @field_validator("subject")
        @classmethod
        def _template(cls, value: str) -> str:
            check_template(value)
            return value

        # A field validator, not a model one: its error is located at `password`, so the config
        # error shows "(hidden)" instead of the options table with the password in it.
        @field_validator("password")
        @classmethod
        def _login_pair(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
            if (info.data.get("username") is None) != (value is None):
                raise ValueError("username and password go together: give both or neither")
            return value

    async def start(self) -> None:
        import aiosmtplib  # noqa: F401  (imported here so that listing plugins stays fast)

        config = self._config
        self._port = config.port or DEFAULT_PORTS[config.security]
        self._sender = address_of(config.sender)
        self._recipients = [address_of(r) for r in config.recipients]
        self._domain = self._sender.rpartition("@")[2]
        self._cert_bundle = str(self.context.resolve(config.ca_file)) if config.ca_file else None
        # Recipients that accepted a delivery which then failed for another one: a retry goes
        # only to those still missing it, so nobody gets the same alert twice.
        self._accepted: OrderedDict[str, set[str]] = OrderedDict()
        if config.security == "none" and config.password is not None:
            self.log.warning("%s: security = 'none' sends the SMTP password unencrypted", self.name)

    @property
    def _config(self) -> EmailNotifier.Config:
        assert isinstance(self.config, EmailNotifier.Config)
        return self.config

    @property
    def _where(self) -> str:
        return f"{self._config.host}:{self._port}"

    def build(self, incident: Incident, snapshot: Snapshot) -> EmailMessage:
        """The message as it is sent (also used by tests and previews)."""
        config = self._config
        notes: list[str] = []
        if snapshot.data is not None:
            notes.append(f"Snapshot attached: {snapshot.filename}.")
        elif snapshot.note:
            notes.append(snapshot.note)
        message = EmailMessage()
        message["Subject"] = subject(incident, config.subject, reply=True)
        message["From"] = config.sender
        message["To"] = ", ".join(config.recipients)
        message["Date"] = format_datetime(incident.created_at)
        message["Message-ID"] = message_id(incident.delivery_key(self.name), self._domain)
        if incident.revision > 0:
            first = message_id(incident.model_copy(update={"revision": 0}).delivery_key(self.name), self._domain)
            message["In-Reply-To"] = first
            message["References"] = first
        message["X-Campusguard-Incident"] = incident.id
        message["X-Campusguard-Exercise"] = "true" if incident.exercise else "false"
        if incident.exercise:
            message["X-Campusguard-Drill"] = "EXERCISE - not a real emergency"
        message.set_content(body_text(incident, notes=notes))
        if config.html:
            message.add_alternative(body_html(incident, notes=notes), subtype="html")
        if snapshot.data is not None:
            maintype, subtype = snapshot.mimetype.split("/")
            message.add_attachment(snapshot.data, maintype=maintype, subtype=subtype, filename=snapshot.filename)
        return message

    async def notify(self, incident: Incident) -> None:
        import aiosmtplib

        config = self._config
        key = incident.delivery_key(self.name)
        done = self._accepted.get(key, set())
        pending = [r for r in self._recipients if r not in done]
        snapshot = Snapshot(None)
        if config.attach_snapshot:
            snapshot = await asyncio.to_thread(load_snapshot, incident, self.context.core.data_dir)
            if snapshot.note:
                self.log.warning("incident %s: %s", incident.id, snapshot.note)
        message = self.build(incident, snapshot)
        try:
            refused, _ = await aiosmtplib.send(
                message,
                sender=self._sender,
                recipients=pending,
                hostname=config.host,
                port=self._port,
                username=config.username,
                password=config.password.get_secret_value() if config.password else None,
                use_tls=config.security == "tls",
                start_tls=config.security == "starttls",
                timeout=config.timeout,
                validate_certs=config.validate_certs,
                cert_bundle=self._cert_bundle,
            )
        except aiosmtplib.SMTPAuthenticationError as exc:
            if exc.code in AUTH_REFUSED:
                raise AuthFailed(
                    f"SMTP {self._where} refused the login of {config.username!r}: {exc.code} {exc.message}"
                ) from exc
            raise NotReady(f"SMTP {self._where} could not log in now: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPRecipientsRefused as exc:
            who = "; ".join(f"{e.recipient} ({e.code} {e.message})" for e in exc.recipients)
            raise NotReady(f"SMTP {self._where} refused every recipient: {who}") from exc
        except aiosmtplib.SMTPSenderRefused as exc:
            raise NotReady(f"SMTP {self._where} refused sender {exc.sender}: {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPConnectError as exc:  # refused, unreachable, or timed out connecting
            raise NotReady(f"SMTP server {self._where} unreachable: {exc}") from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            raise NotReady(f"SMTP server {self._where} stopped answering: {exc}") from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise NotReady(f"SMTP {self._where} answered {exc.code} {exc.message}") from exc
        except aiosmtplib.SMTPException as exc:
            if config.username is not None and "AUTH extension" in str(exc):
                raise AuthFailed(f"SMTP {self._where} offers no login: {exc}") from exc
            raise NotReady(f"SMTP {self._where}: {exc}") from exc
        except OSError as exc:  # TLS handshake and certificate errors, resets
            raise NotReady(f"SMTP {self._where}: {type(exc).__name__}: {exc}") from exc
        if refused:
            # Some recipients have it: remember them, and retry only the ones that refused.
            self._accepted[key] = done | {r for r in pending if r not in refused}
            self._accepted.move_to_end(key)
            while len(self._accepted) > _REMEMBERED:
                self._accepted.popitem(last=False)
            who = "; ".join(f"{addr} ({resp.code} {resp.message})" for addr, resp in refused.items())
            raise NotReady(f"SMTP {self._where} refused recipient {who}")
        self._accepted.pop(key, None)
