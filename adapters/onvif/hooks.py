"""Registers the ONVIF camera source (heavy ONVIF modules load only when a camera starts)."""

from __future__ import annotations

from campusguard.sdk import CameraSource, Registry, hookimpl

from .camera import OnvifCamera


@hookimpl
def campusguard_register_camera_sources(registry: Registry[CameraSource]) -> None:
    registry.add(OnvifCamera)
