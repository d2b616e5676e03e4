"""Registers the emergency-dispatch adapters (lxml and httpx load only when one of them works)."""

from __future__ import annotations

from campusguard.sdk import Component, Registry, hookimpl

from .http import CapHttpDispatcher
from .partner import Partner911Dispatcher
from .sip import CapSipDispatcher


@hookimpl
def campusguard_register_adapters(registry: Registry[Component]) -> None:
    registry.add(CapHttpDispatcher)
    registry.add(CapSipDispatcher)
    registry.add(Partner911Dispatcher)
