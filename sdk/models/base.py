"""What every message on the bus shares: an id, an idempotency key and a time stamp.

Every message is a pydantic model that round-trips through JSON, so that the in-process bus can be
swapped for a distributed one (NATS JetStream is the candidate) without touching a plugin.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field


def new_id() -> str:
    """A random, URL-safe, sortable-enough identifier."""
    return uuid.uuid4().hex


def utc_now() -> datetime:
    return datetime.now(UTC)


class StageStamp(BaseModel):
    """When a message passed one stage, on both clocks.

    ``monotonic`` (``time.monotonic()``) gives exact latencies on one host; ``wall`` is for people
    and for comparing hosts.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    monotonic: float
    wall: datetime

    @classmethod
    def now(cls) -> StageStamp:
        return cls(monotonic=time.monotonic(), wall=utc_now())


class Message(BaseModel):
    """Base of every serialisable message. Unknown fields are rejected."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    id: str = Field(default_factory=new_id)
    created_at: datetime = Field(default_factory=utc_now)

    @property
    def idempotency_key(self) -> str:
        """A receiver drops a second message with the same key. Defaults to the id."""
        return self.id
