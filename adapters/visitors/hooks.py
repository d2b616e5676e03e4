"""Registers the visitor-system adapters (aiohttp loads only when a webhook receiver starts)."""

from __future__ import annotations

from campusguard.sdk import Component, Registry, hookimpl

from .envoy import EnvoyWebhookVisitorSystem


@hookimpl
def campusguard_register_adapters(registry: Registry[Component]) -> None:
    registry.add(EnvoyWebhookVisitorSystem)
