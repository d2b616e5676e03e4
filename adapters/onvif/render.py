"""``campusguard discover`` output: a readable list for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from .discovery import DiscoveredDevice
from .media import StreamProfile


def device_to_dict(device: DiscoveredDevice) -> dict[str, Any]:
    media = device.media
    return {
        "address": device.address,
        "endpoint": device.endpoint,
        "interface": device.interface,
        "xaddrs": device.xaddrs,
        "host": device.host,
        "port": device.port,
        "name": device.name,
        "hardware": device.hardware,
        "location": device.location,
        "scopes": device.scopes,
        "types": device.types,
        "manufacturer": device.info.manufacturer if device.info else None,
        "model": device.info.model if device.info else None,
        "firmware": device.info.firmware if device.info else None,
        "serial": device.info.serial if device.info else None,
        "profiles": [asdict(p) for p in media.profiles] if media else [],
        "main_profile": media.main.token if media else None,
        "sub_profile": media.sub.token if media else None,
        "snapshot_uri": media.snapshot_uri if media else None,
        "media2_offered": media.media2_offered if media else None,
        "error": device.error,
        "warnings": device.warnings,
    }


def render_json(devices: Sequence[DiscoveredDevice]) -> str:
    return json.dumps({"devices": [device_to_dict(d) for d in devices]}, indent=2)


def render_text(devices: Sequence[DiscoveredDevice], *, credentials_given: bool = True) -> str:
    if not devices:
        return (
            "No ONVIF cameras answered. Check that this host is on the cameras' network (or pick one with --interface)."
        )
    count = f"{len(devices)} ONVIF camera{'s' if len(devices) != 1 else ''}"
    lines = [f"Found {count}:", ""]
    for device in devices:
        lines += _device_lines(device)
        lines.append("")
    if not credentials_given:
        lines.append("Give a username and password to see models, firmware and stream URIs.")
    return "\n".join(lines).rstrip() + "\n"


def _device_lines(device: DiscoveredDevice) -> list[str]:
    title = f"{device.address}  {device.name or '(no name)'}"
    if device.interface:
        title += f"  (via {device.interface})"
    lines = [title]
    for label, value in (("hardware", device.hardware), ("location", device.location)):
        if value:
            lines.append(f"    {label + ':':10}{value}")
    lines.append(f"    {'ONVIF:':10}{', '.join(device.xaddrs) or '(no address given)'}")
    if device.info:
        info = device.info
        made = " ".join(v for v in (info.manufacturer, info.model) if v) or "unknown model"
        lines.append(f"    {'device:':10}{made}, firmware {info.firmware or '?'}, serial {info.serial or '?'}")
    if device.media:
        lines += _media_lines(device)
    for warning in device.warnings:
        lines.append(f"    ! {warning}")
    if device.error:
        lines.append(f"    ! {device.error}")
    return lines


def _media_lines(device: DiscoveredDevice) -> list[str]:
    assert device.media is not None
    media, lines = device.media, []
    for index, profile in enumerate(media.profiles):
        label = "profiles:" if index == 0 else ""
        lines.append(f"    {label:10}{_profile(profile)}{_role(profile, media.main, media.sub)}")
        if profile.stream_uri:
            lines.append(f"    {'':10}  {profile.stream_uri}")
    if media.snapshot_uri:
        lines.append(f"    {'snapshot:':10}{media.snapshot_uri}")
    return lines


def _profile(profile: StreamProfile) -> str:
    fps = f" {profile.fps:g} fps" if profile.fps else ""
    return f"{profile.token} {profile.resolution} {profile.encoding or '?'}{fps}"


def _role(profile: StreamProfile, main: StreamProfile, sub: StreamProfile) -> str:
    roles = [r for r, p in (("evidence/live", main), ("detection", sub)) if p.token == profile.token]
    return f"  [{', '.join(roles)}]" if roles else ""
