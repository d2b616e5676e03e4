"""A PIDF-LO (RFC 4119, profiled by RFC 5491) saying where an incident is: a GML point or circle, and
a civic address (RFC 5139), each in its own ``<dm:device>`` as RFC 5491 asks for two descriptions
of one place."""

from __future__ import annotations

import uuid
from typing import Any

from lxml import etree  # type: ignore[import-untyped]
from lxml.builder import ElementMaker  # type: ignore[import-untyped]

from campusguard.sdk import Incident

from .alert import incident_point, raised_at
from .settings import CIVIC_FIELDS, CapSettings

PIDF = "urn:ietf:params:xml:ns:pidf"
DM = "urn:ietf:params:xml:ns:pidf:data-model"
GP = "urn:ietf:params:xml:ns:pidf:geopriv10"
GBP = "urn:ietf:params:xml:ns:pidf:geopriv10:basicPolicy"
CA = "urn:ietf:params:xml:ns:pidf:geopriv10:civicAddr"
GML = "http://www.opengis.net/gml"
GS = "http://www.opengis.net/pidflo/1.0"
NSMAP = {None: PIDF, "dm": DM, "gp": GP, "gbp": GBP, "ca": CA, "gml": GML, "gs": GS}
WGS84_2D = "urn:ogc:def:crs:EPSG::4326"
METRE = "urn:ogc:def:uom:EPSG::9001"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"

_P: Any = ElementMaker(namespace=PIDF, nsmap=NSMAP)
_DM: Any = ElementMaker(namespace=DM, nsmap=NSMAP)
_GP: Any = ElementMaker(namespace=GP, nsmap=NSMAP)
_GBP: Any = ElementMaker(namespace=GBP, nsmap=NSMAP)
_CA: Any = ElementMaker(namespace=CA, nsmap=NSMAP)
_GML: Any = ElementMaker(namespace=GML, nsmap=NSMAP)
_GS: Any = ElementMaker(namespace=GS, nsmap=NSMAP)


def civic_address(incident: Incident, settings: CapSettings) -> dict[str, str]:
    """The configured civic address, with the incident's building, floor and room (more precise) on top."""
    fields = dict(settings.area.civic)
    location = incident.location
    if location is not None:
        for key, value in (("NAM", location.site), ("BLD", location.building), ("FLR", location.floor),
                           ("ROOM", location.room)):  # fmt: skip
            if value:
                fields[key] = value
    if incident.zone and "LOC" not in fields:
        fields["LOC"] = f"zone {incident.zone}"
    return fields


def has_location(incident: Incident, settings: CapSettings) -> bool:
    return incident_point(incident, settings) is not None or bool(civic_address(incident, settings))


def _geopriv(location_info: Any, method: str) -> Any:
    return _GP.geopriv(
        _GP("location-info", location_info),
        _GP("usage-rules", _GBP("retransmission-allowed", "true")),  # responders may pass it on
        _GP.method(method),
    )


def build_pidf(incident: Incident, settings: CapSettings, entity: str) -> bytes:
    """The PIDF-LO document; ``entity`` is the presentity (``pres:user@host``)."""
    timestamp = raised_at(incident).isoformat()
    device_id = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'campusguard:{incident.camera_id or entity}')}"
    own = incident.location is not None and incident.location.latitude is not None
    method = "Manual"  # surveyed and configured: a camera's or the site's coordinates
    devices: list[Any] = []
    point = incident_point(incident, settings)
    if point is not None:
        pos = _GML.pos(f"{point[0]:.7f} {point[1]:.7f}")
        radius_m = settings.area.radius_km * 1000 if not own else 0
        shape = (
            _GS.Circle(pos, _GS.radius(f"{radius_m:g}", uom=METRE), srsName=WGS84_2D)
            if radius_m > 0
            else _GML.Point(pos, srsName=WGS84_2D)
        )
        devices.append(_DM.device(_geopriv(shape, method), _DM.deviceID(device_id), _DM.timestamp(timestamp),
                                  id="geodetic"))  # fmt: skip
    civic = civic_address(incident, settings)
    if civic:
        address = _CA.civicAddress(*(_CA(key, civic[key]) for key in CIVIC_FIELDS if key in civic))
        address.set(XML_LANG, settings.language)
        devices.append(_DM.device(_geopriv(address, method), _DM.deviceID(device_id), _DM.timestamp(timestamp),
                                  id="civic"))  # fmt: skip
    document: bytes = etree.tostring(
        _P.presence(*devices, entity=entity), xml_declaration=True, encoding="UTF-8", pretty_print=True
    )
    return document
