"""``[[rules]]`` in plugins.toml: when an observation becomes an incident, and what kind."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

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


class Verification(StrEnum):
    """Who decides that an incident is real before its actions run."""

    NONE = "none"  # the rule's confirmation is enough: confirmed at once
    HUMAN = "human"  # verifying until a person runs `campusguard incidents verify`
    AUTO = "auto"  # confirmed at once when confidence >= auto_confirm, else a person decides


class Action(BaseModel):
    """``[[rules.actions]]``: what happens once an incident is confirmed, after ``delay`` seconds."""

    model_config = ConfigDict(extra="forbid")

    do: Literal["notify", "dispatch", "ptz_preset", "door_scenario"] = Field(
        description="notify: notifiers; dispatch: dispatcher adapters; ptz_preset: point a camera; "
        "door_scenario: start a [scenarios.NAME] (rules may only secure doors)"
    )
    targets: list[str] = Field(default_factory=list, description="notify/dispatch: notifier or adapter names")
    camera: str | None = Field(default=None, description="ptz_preset: the camera to move")
    preset: str | None = Field(default=None, description="ptz_preset: the preset's name or token")
    scenario: str | None = Field(default=None, description="door_scenario: the scenario's name")
    delay: float = Field(default=0.0, ge=0, description="seconds after confirmation")

    @model_validator(mode="after")
    def _complete(self) -> Action:
        if self.do in ("notify", "dispatch") and not self.targets:
            raise ValueError(f"do = {self.do!r} needs targets")
        if self.do == "ptz_preset" and not (self.camera and self.preset):
            raise ValueError("do = 'ptz_preset' needs camera and preset")
        if self.do == "door_scenario" and not self.scenario:
            raise ValueError("do = 'door_scenario' needs scenario")
        return self


class Escalation(BaseModel):
    """``[[rules.escalation]]``: if nobody acknowledged ``after`` seconds after it was raised, tell ``notify``."""

    model_config = ConfigDict(extra="forbid")

    after: float = Field(gt=0, description="seconds after the incident was raised")
    notify: list[str] = Field(min_length=1, description="notifier names")


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
    verification: Verification = Verification.NONE
    auto_confirm: float | None = Field(default=None, ge=0, le=1, description="verification = auto: the threshold")
    verifiers: list[str] = Field(
        default_factory=list, description="notifiers asked to verify (verification human/auto); empty: notify's"
    )
    actions: list[Action] = Field(default_factory=list, description="run once the incident is confirmed")
    escalation: list[Escalation] = Field(default_factory=list, description="steps, in order of `after`")
    escalation_repeat: float = Field(
        default=0.0, ge=0, description="seconds between repeats of the last step until acknowledged; 0: never"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Rule:
        if self.verification is Verification.AUTO and self.auto_confirm is None:
            raise ValueError("verification = 'auto' needs auto_confirm (a confidence between 0 and 1)")
        if self.verification is not Verification.AUTO and self.auto_confirm is not None:
            raise ValueError("auto_confirm only applies with verification = 'auto'")
        afters = [step.after for step in self.escalation]
        if afters != sorted(afters):
            raise ValueError(f"escalation steps must be in order of `after`: {afters}")
        return self

    def confirms_at_once(self, confidence: float) -> bool:
        if self.verification is Verification.NONE:
            return True
        return self.verification is Verification.AUTO and confidence >= (self.auto_confirm or 0.0)
