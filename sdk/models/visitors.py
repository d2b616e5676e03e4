"""Visitors on site, as a visitor-management system reports them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import Field

from .base import Message


class Visitor(Message):
    """A person signed in at the front office. ``visitor_id`` is the visitor system's opaque id."""

    visitor_id: str
    display_name: str
    host: str | None = None
    signed_in_at: datetime
    signed_out_at: datetime | None = None
    location: str | None = Field(default=None, description="entrance or building they signed in at")


class VisitorEventKind(StrEnum):
    SIGNED_IN = "signed_in"
    SIGNED_OUT = "signed_out"
    WATCHLIST_REVIEW = "watchlist_review"  # the visitor system flagged a sign-in for review (never faces)
    WATCHLIST_DENY = "watchlist_deny"  # the front office denied entry to a flagged visitor


class VisitorEvent(Message):
    """What a visitor system reported; the core keeps the on-site roster from these."""

    kind: VisitorEventKind
    visitor: Visitor
    source: str = Field(description="the visitor-system component that reported it")
    camera_id: str | None = Field(default=None, description="the camera at the entrance they signed in at")
    detail: dict[str, Any] = Field(default_factory=dict)
