"""A notifier that writes each incident to the log: the zero-setup default."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import BaseModel, ConfigDict

from campusguard.sdk import Incident, Notifier


class LogNotifier(Notifier):
    """Logs one line per incident, marked ``[EXERCISE]`` for drills."""

    kind = "log"

    class Config(BaseModel):
        model_config = ConfigDict(extra="forbid")

        level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "WARNING"

    async def notify(self, incident: Incident) -> None:
        assert isinstance(self.config, LogNotifier.Config)
        drill = "[EXERCISE] " if incident.exercise else ""
        where = " ".join(filter(None, [incident.camera_id, incident.zone]))
        self.log.log(
            getattr(logging, self.config.level),
            "%sincident %s %s (%s) %s confidence %.2f key %s",
            drill,
            incident.kind,
            incident.id,
            incident.severity,
            where,
            incident.confidence,
            incident.delivery_key(self.name),
        )
