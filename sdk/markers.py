"""The pluggy markers of the ``campusguard`` project."""

from __future__ import annotations

import pluggy

PROJECT_NAME = "campusguard"
ENTRY_POINT_GROUP = "campusguard.plugins"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
