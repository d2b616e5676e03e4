"""Registers the built-in trackers through the same hook as any third-party plugin."""

from __future__ import annotations

from campusguard.sdk import Registry, Tracker, hookimpl

from .bytetrack import ByteTrack


@hookimpl
def campusguard_register_trackers(registry: Registry[Tracker]) -> None:
    registry.add(ByteTrack)
