"""``[[rules]]`` in plugins.toml: when an observation becomes an incident, and what kind."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from campusguard.sdk import IncidentKind, Severity
from campusguard.sdk.schedule import Schedule

# The fields a title template may use: ``title = "{kind} near {zone} ({confidence:.0%})"``.
TITLE_FIELDS = {"kind": "loitering", "camera_id": "cam", "zone": "zone", "confidence": 0.5, "rule": "rule"}


class Confirm(BaseModel):
    """``k`` of the last ``n`` matching observations of one camera+zone must pass ``min_confidence``."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(ge=1)
    n: int = Field(ge=1)
    window: float | None = Field(default=None, gt=0, description="seconds; older observations do not count")

    @model_validator(mode="after")
    def _k_le_n(self) -> Confirm:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


class When(BaseModel):
    """Which observations a rule matches. An empty list matches everything."""

    model_config = ConfigDict(extra="forbid")

    kinds: list[str] = Field(default_factory=list, description="observation kinds; empty: all")
    cameras: list[str] = Field(default_factory=list, description="camera names; empty: all")
    zones: list[str] = Field(default_factory=list, description="zone names; empty: all, with or without a zone")
    schedule: Schedule | None = Field(default=None, description="only while the schedule is active")
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    confirm: Confirm | None = None


class IncidentTemplate(BaseModel):
    """What incident a matching observation raises."""

    model_config = ConfigDict(extra="forbid")

    kind: str | None = Field(default=None, description="default: the observation's kind")
    severity: Severity = Severity.MODERATE
    title: str | None = Field(default=None, description="str.format with kind, camera_id, zone, confidence, rule")

    @field_validator("title")
    @classmethod
    def _title_formats(cls, title: str | None) -> str | None:
        # A typo in a placeholder must fail at `campusguard check`, not when the first incident comes.
        if title is not None:
            try:
                title.format(**TITLE_FIELDS)
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"bad template {title!r}: {exc!r}; fields: {', '.join(TITLE_FIELDS)}") from None
        return title

    def incident_kind(self, observed: str) -> IncidentKind | str:
        kind = self.kind or observed
        try:
            return IncidentKind(kind)
        except ValueError:
            return kind  # plugins may raise kinds of their own

    def render_title(self, **fields: Any) -> str:
        if self.title is not None:
            return self.title.format(**fields)
        where = f" in {fields['zone']}" if fields.get("zone") else ""
        return f"{fields['kind']} on {fields['camera_id']}{where}"


class Rule(BaseModel):
    """One ``[[rules]]`` table."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    when: When = Field(default_factory=When)
    incident: IncidentTemplate = Field(default_factory=IncidentTemplate)
    notify: list[str] = Field(default_factory=list, description="notifier names; empty: every notifier")
    exercise: bool = Field(default=False, description="a drill: every incident it raises says so")
    dedupe_seconds: float = Field(default=60.0, ge=0, description="repeats within this update the open incident")
    cooldown_seconds: float = Field(default=0.0, ge=0, description="after an incident, no new one for the same key")
