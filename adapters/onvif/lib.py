"""onvif-zeep-async, imported once and quietly: every module here reaches the library through this one.

``import onvif`` calls ``logging.basicConfig(level=INFO)``, which would take over the logging of
the whole process; the import below undoes that. The library has no type information, hence
``Any``.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any


def _import_quietly(name: str) -> Any:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        return importlib.import_module(name)
    finally:
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


onvif: Any = _import_quietly("onvif")
exceptions: Any = importlib.import_module("onvif.exceptions")
util: Any = importlib.import_module("onvif.util")
SERVICES: dict[str, dict[str, str]] = importlib.import_module("onvif.definition").SERVICES
WSDL_DIR = str(Path(onvif.__file__).parent / "wsdl")
