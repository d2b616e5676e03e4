"""Errors the ONVIF adapter raises besides the SDK's ``NotReady`` and ``AuthFailed``.

Each message names the camera and says what a school's IT lead can do about it.
"""

from __future__ import annotations

from campusguard.sdk import AuthFailed, CampusguardError, NotReady


class MalformedResponse(NotReady):
    """The device answered, but not with SOAP we understand (HTML, broken XML, missing fields).

    A ``NotReady``: a camera that is still booting often serves its web page before ONVIF works,
    so the core retries with backoff; the message says what came back instead.
    """


class ClockSkewError(AuthFailed):
    """Authentication failed and the device's clock is far from this host's.

    WS-Security password digests carry a time stamp the device checks against its own clock.
    """


class DeviceFault(CampusguardError):
    """The device understood the request and refused it (a SOAP fault that is not about auth)."""


class Unsupported(DeviceFault):
    """The device does not offer the service this needs (e.g. no PTZ, no events)."""


class PresetNotFound(DeviceFault):
    """No PTZ preset has the token or name asked for."""
