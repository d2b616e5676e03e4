"""Visitors on site, as a visitor-management system reports them."""

from __future__ import annotations

from datetime import datetime

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
