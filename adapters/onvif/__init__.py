"""ONVIF cameras: discovery, stream URIs, clock checks, PullPoint events and PTZ presets.

Built on onvif-zeep-async (SOAP) and wsdiscovery (WS-Discovery messages). This package imports
nothing heavy: import the submodule you need (``.media``, ``.events``, ...) where you use it,
e.g. inside a component's ``start()``, so that listing plugins stays instant.
"""

from .errors import ClockSkewError, DeviceFault, MalformedResponse, PresetNotFound, Unsupported

__all__ = ["ClockSkewError", "DeviceFault", "MalformedResponse", "PresetNotFound", "Unsupported"]
