"""Registers the built-in notifiers through the same hook as any third-party plugin."""

from __future__ import annotations

from campusguard.sdk import Notifier, Registry, hookimpl

from .apprise_notifier import AppriseNotifier
from .email import EmailNotifier
from .log import LogNotifier
from .mqtt import MqttNotifier
from .webhook import WebhookNotifier


@hookimpl
def campusguard_register_notifiers(registry: Registry[Notifier]) -> None:
    registry.add(LogNotifier)
    registry.add(WebhookNotifier)
    registry.add(MqttNotifier)
    registry.add(EmailNotifier)
    registry.add(AppriseNotifier)
