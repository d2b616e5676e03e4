"""Rules: which observations become incidents, for whom, and how often.

Only the model is exported here: ``core.config`` imports it, and the engine (which needs the
runtime's types) is imported by the runtime when a config has rules.
"""

from __future__ import annotations

from .model import Action, Confirm, Escalation, IncidentTemplate, Rule, Verification, When

__all__ = ["Action", "Confirm", "Escalation", "IncidentTemplate", "Rule", "Verification", "When"]
