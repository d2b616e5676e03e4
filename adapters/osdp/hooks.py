"""Registers the OSDP access-control adapter (libosdp loads only when an OSDP bus starts)."""

from __future__ import annotations

from campusguard.sdk import Component, Registry, hookimpl

from .adapter import OsdpAccessControl


@hookimpl
def campusguard_register_adapters(registry: Registry[Component]) -> None:
    registry.add(OsdpAccessControl)
