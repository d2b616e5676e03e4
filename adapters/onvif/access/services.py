"""The ONVIF DoorControl and AccessControl services, made known to onvif-zeep-async.

onvif-zeep-async ships ``doorcontrol.wsdl`` and ``accesscontrol.wsdl`` (v1.0) but its client only
creates services listed in ``onvif.definition.SERVICES``, a module-level dict that
``onvif.client`` imports by reference: ``ONVIFCamera.get_definition(name)`` looks the name up
there to find the WSDL file, the binding and the namespace whose XAddr (from GetServices) is the
service's address. Adding two entries to that same dict, once, is all it takes; no library file
is patched. The entries use the library's own key names so that its GetCapabilities fallback
(which maps capability categories through the same dict) is unaffected: there is no
``DoorControl`` category in ``tt:Capabilities``, so door controllers are found by GetServices only.
"""

from __future__ import annotations

DOORCONTROL = "doorcontrol"
ACCESSCONTROL = "accesscontrol"
DOORCONTROL_NS = "http://www.onvif.org/ver10/doorcontrol/wsdl"
ACCESSCONTROL_NS = "http://www.onvif.org/ver10/accesscontrol/wsdl"

DEFINITIONS: dict[str, dict[str, str]] = {
    DOORCONTROL: {"ns": DOORCONTROL_NS, "wsdl": "doorcontrol.wsdl", "binding": "DoorControlBinding"},
    ACCESSCONTROL: {"ns": ACCESSCONTROL_NS, "wsdl": "accesscontrol.wsdl", "binding": "PACSBinding"},
}


def register_services() -> None:
    """Add DoorControl and AccessControl to the library's service table. Idempotent.

    Raises ``RuntimeError`` if something else registered one of the names differently (two
    plugins disagreeing about a WSDL would make every door command a guess).
    """
    from .. import lib  # imports onvif-zeep-async: only when a controller starts

    for name, definition in DEFINITIONS.items():
        existing = lib.SERVICES.setdefault(name, dict(definition))
        if existing != definition:
            raise RuntimeError(
                f"onvif-zeep-async already knows a service {name!r} as {existing}; campusguard needs {definition}"
            )
