"""Registers the built-in notifiers through the same hook as any third-party plugin."""

from __future__ import annotations

from campusguard.sdk import Notifier, Registry, hookimpl

from .log import LogNotifier
from .webhook import WebhookNotifier


@hookimpl
def campusguard_register_notifiers(registry: Registry[Notifier]) -> None:
    registry.add(LogNotifier)
    registry.add(WebhookNotifier)
