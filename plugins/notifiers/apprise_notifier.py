"""Send each incident through Apprise: Slack, Teams, Telegram, ntfy, SMS gateways, mail and 100+ more.

Apprise URLs carry their tokens (``slack://T000/B000/XXXX``), so they are secrets: configured with
``{ env = "NAME" }`` and never written to a log or an error, only their scheme and position.
"""

from __future__ import annotations

import asyncio
import difflib
import ipaddress
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from campusguard.sdk import ConfigError, Incident, IncidentChange, IncidentKind, Notifier, NotReady, Severity

from .message import DEFAULT_SUBJECT, Snapshot, body_text, check_template, load_snapshot, subject

_REMEMBERED = 1000  # deliveries whose successful URLs are remembered between retries

NOTIFY_TYPES: dict[str, str] = {
    Severity.INFO: "info",
    Severity.MINOR: "warning",
    Severity.MODERATE: "warning",
    Severity.SEVERE: "failure",
    Severity.EXTREME: "failure",
}


def notify_type(incident: Incident) -> str:
    """Apprise's colour/icon: success for an all-clear, else by severity."""
    if incident.change in (IncidentChange.RESOLVED, IncidentChange.DISMISSED):
        return "success"
    if incident.kind == IncidentKind.CAMERA_ONLINE:
        return "success"
    return NOTIFY_TYPES.get(str(incident.severity), "warning")


def scheme_of(url: str) -> str:
    return url.partition("://")[0].strip().lower()


def secret_parts(url: str) -> set[str]:
    """The pieces of an Apprise URL that may be tokens: user, password, path, query values, and
    the host unless it is a plain address or domain name (``discord://{webhook_id}/...``)."""
    parts = {url}
    try:
        split = urlsplit(url)
    except ValueError:
        return parts
    # Split by hand: ``hostname`` is lowercased, and ``tgram://{bot}:{token}/...`` has no port.
    userinfo, _, hostport = split.netloc.rpartition("@")
    parts |= {unquote(p) for p in userinfo.split(":", 1) if p}
    if hostport.startswith("["):  # an IPv6 address
        host = hostport[1 : hostport.find("]")]
    else:
        host, _, port = hostport.partition(":")
        if port and not port.isdigit():
            parts.add(unquote(port))
    parts |= {unquote(seg) for seg in split.path.split("/") if seg}
    parts |= {value for _, value in parse_qsl(split.query) if value}
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host and "." not in host and host != "localhost":
            parts.add(host)
    return {p for p in parts if len(p) >= 3}


@dataclass
class _Target:
    number: int  # 1-based, as a person counts the urls list
    scheme: str
    secrets: set[str]
    apprise: Any  # apprise.Apprise holding this one URL: each URL succeeds or fails on its own
    attachments: bool  # whether the service takes files (SMS gateways do not)

    @property
    def label(self) -> str:
        return f"url {self.number} ({self.scheme}://...)"


class AppriseNotifier(Notifier):
    """One notification per delivery to every URL; a URL that failed is retried, one that worked
    is not sent again. Drills are titled ``[EXERCISE]``."""

    kind = "apprise"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)  # URLs hold tokens

        urls: list[SecretStr] = Field(
            min_length=1, description='Apprise URLs; they hold tokens: urls = [{ env = "NAME" }, ...]'
        )
        title: str = Field(
            default=DEFAULT_SUBJECT,
            description="template over the incident's fields (docs/notifiers.md); drills always get [EXERCISE]",
        )
        attach_snapshot: bool = Field(default=True, description="attach the snapshot when its checksum matches")
        timeout: float = Field(default=8.0, gt=0, description="seconds Apprise may take per URL")

        @field_validator("urls")
        @classmethod
        def _look_like_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
            for number, url in enumerate(value, 1):
                if "://" not in url.get_secret_value():
                    raise ValueError(f"url {number} is not an Apprise URL (expected scheme://...)")
            return value

        @field_validator("title")
        @classmethod
        def _template(cls, value: str) -> str:
            check_template(value)
            return value

    async def start(self) -> None:
        import apprise  # imported here so that listing plugins stays fast

        config = self._config
        manager = apprise.NotificationManager()  # type: ignore[no-untyped-call]
        schemes: list[str] = await asyncio.to_thread(manager.schemas)  # loads Apprise's plugins once
        targets: list[_Target] = []
        for number, secret in enumerate(config.urls, 1):
            url = secret.get_secret_value()
            scheme = scheme_of(url)
            if scheme not in schemes:
                close = difflib.get_close_matches(scheme, schemes, n=1)
                hint = f" (did you mean '{close[0]}://'?)" if close else ""
                raise ConfigError(
                    f"apprise url {number}: unknown scheme '{scheme}://'{hint}; "
                    "see https://github.com/caronc/apprise/wiki for the services and their URLs"
                )
            instance = apprise.Apprise(asset=apprise.AppriseAsset(app_id="campusguard", app_desc="campusguard"))
            if not instance.add(url):
                service = getattr(manager[scheme], "service_name", scheme)
                raise ConfigError(
                    f"apprise url {number} ({scheme}://...): it is not a valid {service} URL for Apprise; "
                    "check its required parts against the Apprise wiki"
                )
            takes_files = bool(getattr(instance[0], "attachment_support", False))
            targets.append(_Target(number, scheme, secret_parts(url), instance, takes_files))
        self._targets = targets
        # URLs that took a delivery which then failed on another URL: only the others are retried.
        self._done: OrderedDict[str, set[int]] = OrderedDict()

    @property
    def _config(self) -> AppriseNotifier.Config:
        assert isinstance(self.config, AppriseNotifier.Config)
        return self.config

    def redact(self, text: str) -> str:
        """``text`` with every token-like piece of every configured URL replaced by ``***``."""
        for piece in sorted({p for t in self._targets for p in t.secrets}, key=len, reverse=True):
            text = text.replace(piece, "***")
        return text

    async def _send(self, target: _Target, title: str, incident: Incident, snapshot: Snapshot) -> str | None:
        """Notify one URL; None when it worked, else why not (redacted)."""
        from apprise.attachment.memory import AttachMemory

        attach = None
        note = snapshot.note
        if snapshot.data is not None and target.attachments:
            attach = AttachMemory(  # type: ignore[no-untyped-call]
                content=snapshot.data, name=snapshot.filename, mimetype=snapshot.mimetype
            )
            note = f"Snapshot attached: {snapshot.filename}."
        elif snapshot.data is not None:
            note = "Snapshot not attached: this service takes no files."
        body = body_text(incident, notes=[note] if note else None)
        result = await target.apprise.async_notify(
            body=body,
            title=title,
            notify_type=notify_type(incident),
            body_format="text",
            attach=attach,
            timeout=self._config.timeout,
        )
        try:
            if result:
                return None
            status = getattr(getattr(result, "status", None), "name", "FAILURE")
            logs = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR", "CRITICAL")]
            reason = f": {logs[-1]}" if logs else ""
            return self.redact(f"{target.label} {status.lower()}{reason}")
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    async def notify(self, incident: Incident) -> None:
        config = self._config
        key = incident.delivery_key(self.name)
        done = self._done.get(key, set())
        snapshot = Snapshot(None)
        if config.attach_snapshot:
            snapshot = await asyncio.to_thread(load_snapshot, incident, self.context.core.data_dir)
            if snapshot.note:
                self.log.warning("incident %s: %s", incident.id, snapshot.note)
        title = subject(incident, config.title)
        todo = [t for t in self._targets if t.number not in done]
        outcomes = await asyncio.gather(*(self._send(t, title, incident, snapshot) for t in todo))
        failed = [reason for reason in outcomes if reason]
        if not failed:
            self._done.pop(key, None)
            return
        self._done[key] = done | {t.number for t, reason in zip(todo, outcomes, strict=True) if reason is None}
        self._done.move_to_end(key)
        while len(self._done) > _REMEMBERED:
            self._done.popitem(last=False)
        raise NotReady(f"apprise: {len(failed)} of {len(self._targets)} URLs failed: {'; '.join(failed)}")
