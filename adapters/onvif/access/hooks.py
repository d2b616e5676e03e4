"""Registers the ONVIF Profile C access-control adapter (the SOAP libraries load only when a controller starts)."""

from __future__ import annotations

from campusguard.sdk import Component, Registry, hookimpl

from .adapter import OnvifAccessControl


@hookimpl
def campusguard_register_adapters(registry: Registry[Component]) -> None:
    registry.add(OnvifAccessControl)
