"""Doors: the site's doors and scenarios, and the safety gate every door command passes through.

Safety lives here, in the core, not in adapters: no command locks an egress path against people
leaving, unlocking and lockdown release need an authenticated person (never a rule), and every
command and its result is in the audit log.

The gate is imported from ``.gate`` by whoever runs it: the config only needs the model, and
listing plugins must not import the store.
"""

from .model import DoorSettings, ScenarioKind, ScenarioSettings

__all__ = ["DoorSettings", "ScenarioKind", "ScenarioSettings"]
