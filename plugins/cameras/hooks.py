"""Registers the built-in camera sources through the same hook as any third-party plugin."""

from __future__ import annotations

from campusguard.sdk import CameraSource, Registry, hookimpl

from .file import FileCamera
from .rtsp import RtspCamera
from .snapshot import SnapshotCamera


@hookimpl
def campusguard_register_camera_sources(registry: Registry[CameraSource]) -> None:
    registry.add(RtspCamera)
    registry.add(FileCamera)
    registry.add(SnapshotCamera)
