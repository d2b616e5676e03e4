"""PTZ presets: list them, go to one (by token or by the name a school gave it), save one.

A rule that points a camera at a door goes to a preset; presets are set up once on the camera
(or with :func:`set_preset`) and named so people recognise them ("Front door").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .client import OnvifSession
from .errors import PresetNotFound, Unsupported
from .media import get_profiles

PTZ_NS = "http://www.onvif.org/ver20/ptz/wsdl"


@dataclass(frozen=True)
class PtzPreset:
    token: str
    name: str
    pan: float | None = None
    tilt: float | None = None
    zoom: float | None = None


async def ptz_profile_token(session: OnvifSession) -> str:
    """The first media profile that has a PTZ configuration."""
    if not session.offers(PTZ_NS):
        raise Unsupported(f"camera '{session.camera_id}' offers no ONVIF PTZ service")
    for profile in await get_profiles(session):
        if getattr(profile, "PTZConfiguration", None) is not None:
            return str(profile.token)
    raise Unsupported(f"camera '{session.camera_id}' has no media profile with a PTZ configuration")


async def list_presets(session: OnvifSession, profile_token: str | None = None) -> list[PtzPreset]:
    token = profile_token or await ptz_profile_token(session)
    result = await session.call("ptz", "GetPresets", {"ProfileToken": token})
    return [_preset(raw) for raw in result or []]


async def goto_preset(
    session: OnvifSession, preset: str, *, profile_token: str | None = None, speed: float | None = None
) -> PtzPreset:
    """Move to ``preset`` (a token, or a name compared without case) and return it.

    ``speed`` (0-1) applies to pan, tilt and zoom; ``None`` uses the camera's default.
    """
    token = profile_token or await ptz_profile_token(session)
    presets = await list_presets(session, token)
    found = next((p for p in presets if p.token == preset), None) or next(
        (p for p in presets if p.name.casefold() == preset.casefold()), None
    )
    if found is None:
        known = ", ".join(f"{p.name!r} ({p.token})" for p in presets) or "none"
        raise PresetNotFound(f"camera '{session.camera_id}' has no PTZ preset {preset!r}; it has: {known}")
    params: dict[str, Any] = {"ProfileToken": token, "PresetToken": found.token}
    if speed is not None:
        params["Speed"] = {"PanTilt": {"x": speed, "y": speed}, "Zoom": {"x": speed}}
    await session.call("ptz", "GotoPreset", params)
    return found


async def set_preset(session: OnvifSession, name: str, *, profile_token: str | None = None) -> str:
    """Save the current position as a preset called ``name``; returns its token."""
    token = profile_token or await ptz_profile_token(session)
    existing = next((p for p in await list_presets(session, token) if p.name.casefold() == name.casefold()), None)
    params: dict[str, Any] = {"ProfileToken": token, "PresetName": name}
    if existing is not None:
        params["PresetToken"] = existing.token  # overwrite instead of adding a second one of that name
    return str(await session.call("ptz", "SetPreset", params))


def _preset(raw: Any) -> PtzPreset:
    position = getattr(raw, "PTZPosition", None)
    pan_tilt = getattr(position, "PanTilt", None)
    zoom = getattr(position, "Zoom", None)
    return PtzPreset(
        token=str(raw.token),
        name=str(getattr(raw, "Name", None) or raw.token),
        pan=_num(pan_tilt, "x"),
        tilt=_num(pan_tilt, "y"),
        zoom=_num(zoom, "x"),
    )


def _num(obj: Any, name: str) -> float | None:
    value = getattr(obj, name, None) if obj is not None else None
    return float(value) if value is not None else None
