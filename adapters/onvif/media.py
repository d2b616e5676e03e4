"""A camera's profiles and stream URIs, and which stream each job uses.

Detection runs on the sub-stream (the lowest resolution at least ``min_sub_width`` wide: decoding
1080p costs ten times 640x480), evidence and live view on the main stream (the highest).

Media2 (``ver20/media``) is noted when the device offers it, but profiles are read through Media1:
onvif-zeep-async ships no Media2 WSDL. Profile S devices must offer Media1, so this works on them;
a profile that only Media2 exposes (often H.265) is not seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .client import OnvifSession
from .errors import DeviceFault, MalformedResponse, Unsupported

MEDIA1_NS = "http://www.onvif.org/ver10/media/wsdl"
MEDIA2_NS = "http://www.onvif.org/ver20/media/wsdl"
# Codecs every decoder here handles well, preferred over MJPEG/MPEG-4 profiles of equal size.
_PREFERRED_CODECS = ("H264", "H265", "HEVC")


@dataclass(frozen=True)
class StreamProfile:
    """One media profile: its video encoder settings and RTSP URI (without credentials)."""

    token: str
    name: str
    encoding: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    bitrate_kbps: int | None = None
    ptz: bool = False
    stream_uri: str | None = None

    @property
    def pixels(self) -> int:
        return (self.width or 0) * (self.height or 0)

    @property
    def resolution(self) -> str:
        return f"{self.width}x{self.height}" if self.width and self.height else "unknown"


@dataclass(frozen=True)
class MediaInfo:
    """What a camera source needs: the stream for detection, the stream for evidence, a snapshot URI."""

    camera_id: str
    profiles: tuple[StreamProfile, ...]
    main: StreamProfile  # evidence and live view
    sub: StreamProfile  # detection
    snapshot_uri: str | None
    media2_offered: bool


@dataclass(frozen=True)
class DeviceInfo:
    manufacturer: str | None
    model: str | None
    firmware: str | None
    serial: str | None
    hardware_id: str | None


async def device_info(session: OnvifSession) -> DeviceInfo:
    result = await session.call("devicemgmt", "GetDeviceInformation")
    return DeviceInfo(
        manufacturer=_text(result, "Manufacturer"),
        model=_text(result, "Model"),
        firmware=_text(result, "FirmwareVersion"),
        serial=_text(result, "SerialNumber"),
        hardware_id=_text(result, "HardwareId"),
    )


async def get_profiles(session: OnvifSession) -> list[Any]:
    """The raw Media1 profiles, fetched once per session (PTZ needs them too)."""
    if "profiles" not in session.cache:
        if not session.offers(MEDIA1_NS):
            raise Unsupported(f"camera '{session.camera_id}' offers no ONVIF media service (Media1)")
        profiles = await session.call("media", "GetProfiles")
        if not profiles:
            raise MalformedResponse(f"camera '{session.camera_id}' reported no media profiles")
        session.cache["profiles"] = list(profiles)
    return list(session.cache["profiles"])


def profile_from_zeep(raw: Any) -> StreamProfile:
    encoder = getattr(raw, "VideoEncoderConfiguration", None)
    resolution = getattr(encoder, "Resolution", None)
    rate = getattr(encoder, "RateControl", None)
    return StreamProfile(
        token=str(raw.token),
        name=str(getattr(raw, "Name", None) or raw.token),
        encoding=_text(encoder, "Encoding"),
        width=_int(resolution, "Width"),
        height=_int(resolution, "Height"),
        fps=_float(rate, "FrameRateLimit"),
        bitrate_kbps=_int(rate, "BitrateLimit"),
        ptz=getattr(raw, "PTZConfiguration", None) is not None,
    )


def choose_streams(profiles: Sequence[StreamProfile], min_sub_width: int = 320) -> tuple[StreamProfile, StreamProfile]:
    """``(main, sub)``: the highest resolution, and the lowest one at least ``min_sub_width`` wide.

    Profiles without a video encoder are ignored; well-decoded codecs win over MJPEG at equal
    size. With a single usable profile both are the same.
    """
    video = [p for p in profiles if p.width and p.height] or list(profiles)
    if not video:
        raise ValueError("no profiles to choose from")
    preferred = [p for p in video if (p.encoding or "").upper() in _PREFERRED_CODECS] or video
    main = max(preferred, key=lambda p: (p.pixels, p.fps or 0))
    wide_enough = [p for p in preferred if (p.width or 0) >= min_sub_width]
    sub = min(wide_enough, key=lambda p: (p.pixels, -(p.fps or 0))) if wide_enough else main
    return main, sub


async def stream_uri(session: OnvifSession, profile_token: str) -> str | None:
    result = await session.call(
        "media",
        "GetStreamUri",
        {"StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}, "ProfileToken": profile_token},
    )
    return _text(result, "Uri")


async def snapshot_uri(session: OnvifSession, profile_token: str) -> str | None:
    """The JPEG snapshot URI, or ``None`` when the device has none (many refuse with a fault)."""
    try:
        result = await session.call("media", "GetSnapshotUri", {"ProfileToken": profile_token})
    except (DeviceFault, MalformedResponse):
        return None
    return _text(result, "Uri")


async def resolve_media(session: OnvifSession, *, min_sub_width: int = 320) -> MediaInfo:
    """Profiles with their stream URIs, the main and sub choice, and a snapshot URI."""
    raw_profiles = await get_profiles(session)
    profiles = []
    for raw in raw_profiles:
        profile = profile_from_zeep(raw)
        uri = await stream_uri(session, profile.token)
        profiles.append(_with_uri(profile, uri))
    main, sub = choose_streams(profiles, min_sub_width)
    return MediaInfo(
        camera_id=session.camera_id,
        profiles=tuple(profiles),
        main=main,
        sub=sub,
        snapshot_uri=await snapshot_uri(session, main.token),
        media2_offered=session.offers(MEDIA2_NS),
    )


def with_credentials(uri: str, username: str | None, password: str | None) -> str:
    """``rtsp://user:pass@host/...`` for decoders that take credentials only in the URL."""
    if not username:
        return uri
    parts = urlsplit(uri)
    auth = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{auth}@{host}"))


def _with_uri(profile: StreamProfile, uri: str | None) -> StreamProfile:
    return StreamProfile(**{**profile.__dict__, "stream_uri": uri})


def _text(obj: Any, name: str) -> str | None:
    value = getattr(obj, name, None) if obj is not None else None
    return str(value) if value is not None and str(value) != "" else None


def _int(obj: Any, name: str) -> int | None:
    value = getattr(obj, name, None) if obj is not None else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _float(obj: Any, name: str) -> float | None:
    value = getattr(obj, name, None) if obj is not None else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
