"""Registers the vendor REST access-control adapters (httpx and aiohttp load only when one of them starts)."""

from __future__ import annotations

from campusguard.sdk import Component, Registry, hookimpl

from .verkada import VerkadaAccessControl


@hookimpl
def campusguard_register_adapters(registry: Registry[Component]) -> None:
    registry.add(VerkadaAccessControl)
