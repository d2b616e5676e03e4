"""Library exceptions (aiohttp, zeep, onvif-zeep-async) turned into campusguard errors that name the camera.

Nobody reading a log should see a zeep traceback to learn that a password is wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import aiohttp
import zeep.exceptions

from campusguard.sdk import AuthFailed, CampusguardError, NotReady

from .errors import DeviceFault, MalformedResponse, Unsupported
from .lib import exceptions as _exceptions
from .lib import util as _util
from .oserrors import describe_os_error

if TYPE_CHECKING:
    from .client import OnvifTarget


# zeep raises this message when an HTTP error page came back instead of a SOAP fault.
_ZEEP_UNKNOWN_FAULT = "Unknown fault occured"
# What zeep and onvif-zeep-async raise when a reply parses but lacks what the WSDL promises.
_SHAPE_ERRORS = (TypeError, AttributeError, KeyError, ValueError, IndexError)


def translate_error(exc: BaseException, target: OnvifTarget, action: str, timeout: float) -> CampusguardError | None:
    """The campusguard error for ``exc``, or ``None`` when it is not a device problem (a bug: re-raise)."""
    name = f"camera '{target.camera_id}'"
    where = f"{name} at {target.host}:{target.port}"
    if isinstance(exc, _exceptions.ONVIFAuthError):
        return AuthFailed(f"{name}: authentication failed during {action}; check the username and password")
    if isinstance(exc, TimeoutError | _exceptions.ONVIFTimeoutError):
        return NotReady(f"{where} did not answer {action} within {timeout:g} s")
    if isinstance(exc, _exceptions.ONVIFError):
        # onvif-zeep-async wraps whatever went wrong while building a request; judge the cause.
        if exc.__cause__ is not None:
            return translate_error(exc.__cause__, target, action, timeout)
        if "support service" in str(exc):
            return Unsupported(f"{name} does not offer the service needed for {action}")
        return DeviceFault(f"{name}: {action} failed: {exc}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return NotReady(f"{name} cannot be reached at {target.host}:{target.port}: {describe_os_error(exc.os_error)}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return NotReady(f"{where}: the connection failed during {action}: {exc}")
    if isinstance(exc, zeep.exceptions.Fault):
        return _fault(exc, name, where, action, target)
    if isinstance(exc, zeep.exceptions.TransportError):
        if exc.status_code in (401, 403):
            return AuthFailed(f"{name}: authentication failed (HTTP {exc.status_code}) during {action}")
        return MalformedResponse(f"{where} answered {action} without SOAP (HTTP {exc.status_code}): {_short(exc)}")
    if isinstance(exc, zeep.exceptions.Error):
        return MalformedResponse(f"{where} answered {action} with malformed SOAP: {_short(exc)}")
    if isinstance(exc, _SHAPE_ERRORS):
        return MalformedResponse(
            f"{where} answered {action} with SOAP that lacks what ONVIF requires ({type(exc).__name__}: {_short(exc)})"
        )
    return None


def _fault(exc: zeep.exceptions.Fault, name: str, where: str, action: str, target: OnvifTarget) -> CampusguardError:
    if _util.is_auth_error(exc):
        user = f" user '{target.username}'" if target.username else " (no username configured)"
        return AuthFailed(
            f"{name}: authentication failed: the camera rejected{user} ({action}); check the username and password"
        )
    if exc.message == _ZEEP_UNKNOWN_FAULT:
        return MalformedResponse(f"{where} answered {action} with an HTTP error page instead of SOAP")
    return DeviceFault(f"{name} refused {action}: {describe_fault(exc)}")


def describe_fault(exc: zeep.exceptions.Fault) -> str:
    """``No such subscription (ResourceUnknownFault)``: the reason and the subcodes' local names."""
    codes = [
        code.rpartition("}")[2].rpartition(":")[2] for code in _util.extract_subcodes_as_strings(exc.subcodes or [])
    ]
    reason = _short(exc.message or "no reason given")
    return f"{reason} ({', '.join(codes)})" if codes else reason


def _short(value: object, limit: int = 300) -> str:
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
