"""Check a SOAP answer against the WSDL/XSDs that onvif-zeep-async ships (zeep itself is no validator).

Loading a WSDL with its imports takes about a second, so each is loaded once per test session.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from pathlib import Path

import onvif
from xmlschema import XMLSchemaBase
from xmlschema.extras.wsdl import Wsdl11Document

WSDL_DIR = Path(onvif.__file__).parent / "wsdl"
SOAP = "http://www.w3.org/2003/05/soap-envelope"
WSDL_FILES = {"events": "events.wsdl", "devicemgmt": "devicemgmt.wsdl", "media": "media.wsdl", "ptz": "ptz.wsdl"}


@functools.cache
def schema(service: str) -> XMLSchemaBase:
    return Wsdl11Document(str(WSDL_DIR / WSDL_FILES[service]), allow="local").schema


def validate_soap(service: str, payload: bytes) -> int:
    """Raise if ``payload`` is not a SOAP 1.2 envelope whose body (or fault detail) the WSDL accepts.

    Returns how many elements were checked against the schema.
    """
    root = ET.fromstring(payload)
    assert root.tag == f"{{{SOAP}}}Envelope", f"not a SOAP 1.2 envelope: {root.tag}"
    body = root.find(f"{{{SOAP}}}Body")
    assert body is not None and len(body) == 1, "the Body must hold exactly one element"
    (content,) = body
    if content.tag != f"{{{SOAP}}}Fault":
        schema(service).validate(content)
        return 1
    # SOAP 1.2 faults: no envelope XSD ships with the library; check the structure, validate the detail.
    code = content.findtext(f"{{{SOAP}}}Code/{{{SOAP}}}Value")
    assert code in ("env:Sender", "env:Receiver"), f"fault code {code!r}"
    assert content.findtext(f"{{{SOAP}}}Reason/{{{SOAP}}}Text"), "a fault needs a Reason/Text"
    checked = 0
    for detail in content.findall(f"{{{SOAP}}}Detail/*"):
        schema(service).validate(detail)
        checked += 1
    return checked
