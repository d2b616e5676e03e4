"""What a CAP alert says, as ``plugins.toml`` sets it: shared by every dispatcher that sends CAP.

Only pydantic here (no lxml), so that listing plugins stays instant; ``alert.py`` builds the XML.
"""

from __future__ import annotations

import re
import zoneinfo
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Category = Literal["Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra", "CBRNE",
                   "Other"]  # fmt: skip
ResponseType = Literal["Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"]

# CAP 1.2 (3.2.1): identifier and sender "MUST NOT include spaces, commas or restricted characters (< and &)".
_CAP_TOKEN = re.compile(r"^[^\s,<&]+$")


def cap_token(value: str, what: str) -> str:
    if not _CAP_TOKEN.match(value):
        raise ValueError(f"{what} {value!r} must not contain spaces, commas, '<' or '&' (CAP 1.2)")
    return value


class KindSettings(BaseModel):
    """``[adapters.<name>.kinds.<incident kind>]``: how one kind of incident reads in CAP."""

    model_config = ConfigDict(extra="forbid")

    category: list[Category] | None = Field(default=None, min_length=1, description="CAP categories; default: table")
    event: str | None = Field(default=None, min_length=1, description="CAP event text; default: from the kind")
    instruction: str | None = Field(default=None, description="what recipients should do (your school's procedure)")
    response: list[ResponseType] = Field(default_factory=list, description="CAP responseType(s), e.g. Shelter")


class AreaSettings(BaseModel):
    """``[adapters.<name>.area]``: where the school is, for CAP ``area`` and the PIDF-LO."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(default=None, description="areaDesc; default: the incident's location label")
    latitude: float | None = Field(default=None, ge=-90, le=90, description="WGS 84; used when the incident has none")
    longitude: float | None = Field(default=None, ge=-180, le=180)
    radius_km: float = Field(default=0.2, ge=0, le=100, description="radius of the CAP circle around the point")
    polygon: list[tuple[float, float]] = Field(
        default_factory=list, description="[[lat, lon], ...] outline of the campus (closed automatically)"
    )
    civic: dict[str, str] = Field(
        default_factory=dict, description='RFC 5139 civic address for the PIDF-LO, e.g. { country = "US", A1 = "NY" }'
    )

    @model_validator(mode="after")
    def _complete(self) -> AreaSettings:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("set both latitude and longitude, or neither")
        for lat, lon in self.polygon:
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                raise ValueError(f"polygon point {[lat, lon]} is not [latitude, longitude] in WGS 84")
        if self.polygon and len({tuple(p) for p in self.polygon}) < 3:
            raise ValueError("a polygon needs at least 3 distinct [latitude, longitude] points")
        unknown = sorted(set(self.civic) - set(CIVIC_FIELDS))
        if unknown:
            raise ValueError(f"unknown civic address field(s) {unknown}; RFC 5139 fields: {', '.join(CIVIC_FIELDS)}")
        return self

    @property
    def point(self) -> tuple[float, float] | None:
        if self.latitude is None or self.longitude is None:
            return None
        return (self.latitude, self.longitude)

    def closed_polygon(self) -> list[tuple[float, float]]:
        """The polygon with its first point repeated at the end, as CAP requires."""
        points = list(self.polygon)
        if points and points[0] != points[-1]:
            points.append(points[0])
        return points


# RFC 5139 civic address elements, in the schema's order (building, floor and room also come from the incident).
CIVIC_FIELDS = (
    "country", "A1", "A2", "A3", "A4", "A5", "A6", "PRM", "PRD", "RD", "STS", "POD", "POM", "RDSEC", "RDBR", "RDSUBBR",
    "HNO", "HNS", "LMK", "LOC", "FLR", "NAM", "PC", "BLD", "UNIT", "ROOM", "SEAT", "PLC", "PCN", "POBOX", "ADDCODE",
)  # fmt: skip


class CapSettings(BaseModel):
    """The options every CAP dispatcher shares (the transports add theirs)."""

    model_config = ConfigDict(extra="forbid")

    sender: str = Field(min_length=1, description="CAP sender: who the alerts are from, e.g. safety@school.example")
    sender_name: str | None = Field(default=None, description="CAP senderName, e.g. the school's name")
    status: Literal["Actual", "Test"] = Field(
        default="Actual", description="Actual, or Test for a target being set up; drills are always Exercise"
    )
    scope: Literal["Public", "Restricted", "Private"] = Field(default="Restricted", description="CAP scope")
    restriction: str | None = Field(
        default="For emergency responders and school safety staff only",
        description="scope Restricted: who may see the alert",
    )
    addresses: list[str] = Field(default_factory=list, description="scope Private: the recipients")
    language: str = Field(default="en-US", description="RFC 3066 language of the text")
    identifier_prefix: str = Field(default="campusguard.", description="identifiers are <prefix><incident id>[.rev]")
    timezone: str = Field(default="UTC", description="IANA zone of the times in the alert (with their offset)")
    web: str | None = Field(default=None, description="link to the incident, with {incident_id}")
    contact: str | None = Field(default=None, description="a phone number or name responders can reach")
    instruction: str | None = Field(default=None, description="what to do, for kinds without their own")
    all_clear_instruction: str = Field(
        default="The incident is resolved. Follow directions from school staff.",
        description="instruction of the all-clear update sent when an incident is resolved",
    )
    kinds: dict[str, KindSettings] = Field(default_factory=dict, description="per incident kind: category, event, ...")
    area: AreaSettings = Field(
        default_factory=AreaSettings, description="where the school is: latitude, longitude, radius_km, polygon, civic"
    )
    snapshot: Literal["none", "uri", "embed"] = Field(
        default="none", description="the snapshot as a CAP resource: not at all, by link (snapshot_uri), or embedded"
    )
    snapshot_uri: str | None = Field(default=None, description="snapshot = uri: its URL, with {incident_id}")
    max_embed_kb: int = Field(default=512, gt=0, description="snapshot = embed: larger ones are linked or left out")

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        return cap_token(value, "sender")

    @field_validator("identifier_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return cap_token(value, "identifier_prefix") if value else value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name such as 'America/New_York'") from None
        return value

    @field_validator("web", "snapshot_uri")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                value.format(incident_id="x")
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(f"bad template {value!r}: {exc!r}; the only field is {{incident_id}}") from None
        return value

    @model_validator(mode="after")
    def _scope(self) -> CapSettings:
        if self.scope == "Restricted" and not self.restriction:
            raise ValueError("scope = 'Restricted' needs restriction (who may see the alerts)")
        if self.scope == "Private" and not self.addresses:
            raise ValueError("scope = 'Private' needs addresses (the recipients)")
        if self.snapshot == "uri" and not self.snapshot_uri:
            raise ValueError("snapshot = 'uri' needs snapshot_uri (where receivers fetch it, with {incident_id})")
        return self
