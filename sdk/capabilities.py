"""Optional capabilities a component may offer beyond its kind; the core finds them with ``isinstance``."""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class PtzControl(Protocol):
    """A camera source that can point its camera: rules' ``ptz_preset`` actions use it."""

    async def goto_preset(self, preset: str) -> str:
        """Move to ``preset`` (a name or token); return what was done, for the audit log.

        Raise ``LookupError`` for a preset the camera does not have, ``NotReady`` when unreachable.
        """
        ...
