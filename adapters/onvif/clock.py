"""The device's clock versus this host's: measured before anything is signed, reported in plain words.

WS-Security password digests carry a ``Created`` time stamp that the camera checks against its own
clock, so a camera whose clock is off by minutes rejects correct credentials. ONVIF requires
``GetSystemDateAndTime`` to answer without authentication, so it is asked first, with a raw SOAP
request: that also tells an unreachable device, an HTML page and broken XML apart before zeep
would turn them into tracebacks.
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from campusguard.sdk import NotReady

from .errors import MalformedResponse
from .oserrors import describe_os_error

SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
TDS = "http://www.onvif.org/ver10/device/wsdl"
TT = "http://www.onvif.org/ver10/schema"

# Below this the difference is noise (whole-second device clocks, network delay).
REPORT_THRESHOLD = timedelta(seconds=5)
_HALF_SECOND = timedelta(milliseconds=500)

_REQUEST = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    f'<s:Envelope xmlns:s="{SOAP12}"><s:Body><GetSystemDateAndTime xmlns="{TDS}"/></s:Body></s:Envelope>'
).encode()
_HEADERS = {"Content-Type": f'application/soap+xml; charset=utf-8; action="{TDS}/GetSystemDateAndTime"'}


@dataclass(frozen=True)
class ClockReport:
    """What the device's clock said, and when this host asked."""

    camera_id: str
    device_utc: datetime
    host_utc: datetime

    @property
    def skew(self) -> timedelta:
        """Positive when the device is ahead of this host.

        Devices report whole seconds (their time is cut down, never rounded), so half a second
        is added back: the estimate is then off by at most half a second either way.
        """
        return self.device_utc + _HALF_SECOND - self.host_utc

    @property
    def significant(self) -> bool:
        return abs(self.skew) >= REPORT_THRESHOLD

    def describe(self) -> str:
        """``camera 'gym' clock is 3h12m ahead of this host``."""
        return describe_skew(self.camera_id, self.skew)


def format_duration(delta: timedelta) -> str:
    """``2d3h``, ``3h12m``, ``4m05s``, ``42s``: the two largest units, rounded to the smaller one."""
    seconds = abs(delta.total_seconds())
    whole = round(seconds)
    if whole >= 86400:
        hours = round(seconds / 3600)
        return f"{hours // 24}d{hours % 24}h"
    if whole >= 3600:
        minutes = round(seconds / 60)
        return f"{minutes // 60}h{minutes % 60:02d}m"
    return f"{whole // 60}m{whole % 60:02d}s" if whole >= 60 else f"{whole}s"


def describe_skew(camera_id: str, skew: timedelta) -> str:
    direction = "ahead of" if skew > timedelta(0) else "behind"
    return f"camera '{camera_id}' clock is {format_duration(skew)} {direction} this host"


def skew_failure_message(report: ClockReport) -> str:
    """Why authentication failed when the clock is off."""
    return (
        f"{report.describe()}; WS-Security digests fail; set the camera's time (NTP). "
        "If the time is right and this persists, check the username and password."
    )


def skew_warning_message(report: ClockReport) -> str:
    """What is still wrong when the adapter compensated for the skew."""
    return (
        f"{report.describe()}; campusguard compensates its WS-Security time stamps, but the camera's "
        "own time stamps (events, overlay) are off; set the camera's time (NTP)"
    )


async def read_device_clock(camera_id: str, device_url: str, timeout: float) -> ClockReport | None:
    """Ask ``device_url`` for its UTC time without credentials.

    Returns ``None`` when the device insists on authentication for it (some do, against the
    spec) or reports no UTC time. Raises :class:`NotReady` when the device cannot be reached or
    does not answer within ``timeout``, :class:`MalformedResponse` when it answers with something
    that is not SOAP.
    """
    where = urlsplit(device_url).netloc
    try:
        async with (
            asyncio.timeout(timeout),
            aiohttp.ClientSession() as http,
            http.post(device_url, data=_REQUEST, headers=_HEADERS, allow_redirects=False) as response,
        ):
            status, content_type, body = response.status, response.content_type, await response.read()
    except TimeoutError as exc:
        raise NotReady(f"camera '{camera_id}' did not answer at {where} within {timeout:g} s") from exc
    except aiohttp.ClientConnectorError as exc:
        reason = describe_os_error(exc.os_error)
        raise NotReady(f"camera '{camera_id}' cannot be reached at {where}: {reason}") from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise NotReady(f"camera '{camera_id}' at {where}: the connection failed: {exc}") from exc
    host_utc = datetime.now(UTC)
    if status in (401, 403) and not body.strip():
        return None  # HTTP authentication in front of ONVIF: the time needs credentials
    root = _parse_soap(camera_id, device_url, status, content_type, body)
    if root.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault") is not None:
        return None  # typically "not authorized": this device wants credentials for its time
    utc = root.find(f".//{{{TDS}}}SystemDateAndTime/{{{TT}}}UTCDateTime")
    if utc is None:
        return None
    try:
        year, month, day, hour, minute, second = (
            int(utc.findtext(f"{{{TT}}}{part}/{{{TT}}}{name}", "")) for part, name in _DATE_FIELDS
        )
        device_utc = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError as exc:
        raise MalformedResponse(f"camera '{camera_id}' reported an impossible UTC time: {exc}") from exc
    return ClockReport(camera_id, device_utc, host_utc)


_DATE_FIELDS = (
    ("Date", "Year"),
    ("Date", "Month"),
    ("Date", "Day"),
    ("Time", "Hour"),
    ("Time", "Minute"),
    ("Time", "Second"),
)


def _parse_soap(camera_id: str, url: str, status: int, content_type: str, body: bytes) -> ET.Element:
    where = f"camera '{camera_id}' at {urlsplit(url).netloc}"
    if not body.strip():
        raise MalformedResponse(f"{where} answered HTTP {status} with an empty body instead of ONVIF SOAP")
    if "html" in content_type or body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
        raise MalformedResponse(
            f"{where} answered HTTP {status} with an HTML page, not ONVIF SOAP; is it the ONVIF port?"
        )
    try:
        root = ET.fromstring(body)
    except ET.ParseError as exc:
        raise MalformedResponse(f"{where} answered HTTP {status} with broken XML ({exc})") from exc
    if root.tag != f"{{{SOAP12}}}Envelope":
        raise MalformedResponse(f"{where} answered HTTP {status} with XML that is not a SOAP 1.2 envelope ({root.tag})")
    return root


def clock_from_zeep(camera_id: str, result: Any) -> ClockReport | None:
    """A :class:`ClockReport` from onvif-zeep-async's ``GetSystemDateAndTime`` result."""
    host_utc = datetime.now(UTC)
    utc = getattr(result, "UTCDateTime", None)
    if utc is None or utc.Date is None or utc.Time is None:
        return None
    try:
        device_utc = datetime(
            utc.Date.Year, utc.Date.Month, utc.Date.Day, utc.Time.Hour, utc.Time.Minute, utc.Time.Second, tzinfo=UTC
        )
    except (TypeError, ValueError):
        return None
    return ClockReport(camera_id, device_utc, host_utc)
