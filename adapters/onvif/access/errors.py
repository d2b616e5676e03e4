"""Errors of the ONVIF access-control adapter besides the SDK's ``NotReady``, ``AuthFailed`` and ``LookupError``.

Each message names the door (campusguard's id and the device's DoorToken) and the controller.
"""

from __future__ import annotations

from ..errors import DeviceFault


class DoorCommandRefused(DeviceFault):
    """The door controller answered a door operation with a SOAP Fault: nothing was done.

    ``code`` is the fault's code (``Sender``/``Receiver``), ``subcodes`` its subcodes' local names
    (``["InvalidArgVal", "NotFound"]``) and ``reason`` its Reason text, as the device sent them.
    """

    def __init__(self, message: str, *, code: str = "", subcodes: tuple[str, ...] = (), reason: str = "") -> None:
        super().__init__(message)
        self.code, self.subcodes, self.reason = code, subcodes, reason


class DoorTokenNotFound(DoorCommandRefused, LookupError):
    """The controller does not know the DoorToken it was sent (``ter:InvalidArgVal/ter:NotFound``)."""


class DoorCommandNotEffective(DeviceFault):
    """The controller accepted a command, but the door's state afterwards says it did not happen."""
