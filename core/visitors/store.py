"""The ``visitors`` table (migration 3): the roster, one row per visitor per visitor system.

Small functions over the store's connection; writes take the store's write lock, like its own
methods, so none lands inside another task's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from campusguard.sdk import Visitor
from campusguard.sdk.models import utc_now

from ..store import SQLiteStore

_COLUMNS = "visitor_id, source, display_name, host, location, signed_in_at, signed_out_at, updated_at"


@dataclass(frozen=True)
class RosterEntry:
    """One row: which visitor system reported the visitor, and what it said."""

    source: str
    visitor: Visitor
    updated_at: datetime

    def as_dict(self) -> dict[str, Any]:
        """For people and notifiers: the opaque id, name, host, where and since when. Never a photo."""
        v = self.visitor
        return {
            "visitor_id": v.visitor_id,
            "source": self.source,
            "display_name": v.display_name,
            "host": v.host,
            "location": v.location,
            "signed_in_at": v.signed_in_at.isoformat(),
            "signed_out_at": v.signed_out_at.isoformat() if v.signed_out_at else None,
        }


def _iso(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def _entry(row: Any) -> RosterEntry:
    visitor_id, source, name, host, location, signed_in, signed_out, updated = row
    visitor = Visitor(
        visitor_id=visitor_id,
        display_name=name,
        host=host,
        location=location,
        signed_in_at=datetime.fromisoformat(signed_in),
        signed_out_at=datetime.fromisoformat(signed_out) if signed_out else None,
    )
    return RosterEntry(source, visitor, datetime.fromisoformat(updated))


async def record_visit(store: SQLiteStore, source: str, visitor: Visitor) -> None:
    """Upsert a sign-in or sign-out. A sign-out once recorded stays, even if the sign-in arrives later."""
    async with store._write_lock:
        await store.db.execute(
            f"""
            INSERT INTO visitors ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (source, visitor_id) DO UPDATE SET
                display_name = excluded.display_name,
                host = COALESCE(excluded.host, visitors.host),
                location = COALESCE(excluded.location, visitors.location),
                signed_in_at = excluded.signed_in_at,
                signed_out_at = COALESCE(excluded.signed_out_at, visitors.signed_out_at),
                updated_at = excluded.updated_at
            """,
            (
                visitor.visitor_id, source, visitor.display_name, visitor.host, visitor.location,
                _iso(visitor.signed_in_at), _iso(visitor.signed_out_at), utc_now().isoformat(),
            ),
        )  # fmt: skip


async def on_site(store: SQLiteStore) -> list[RosterEntry]:
    """Everyone signed in and not out, earliest first."""
    async with store.db.execute(
        f"SELECT {_COLUMNS} FROM visitors WHERE signed_out_at IS NULL ORDER BY signed_in_at, source, visitor_id"
    ) as cursor:
        rows = await cursor.fetchall()
    return [_entry(row) for row in rows]


async def visit(store: SQLiteStore, source: str, visitor_id: str) -> RosterEntry | None:
    async with store.db.execute(
        f"SELECT {_COLUMNS} FROM visitors WHERE source = ? AND visitor_id = ?", (source, visitor_id)
    ) as cursor:
        row = await cursor.fetchone()
    return _entry(row) if row is not None else None


async def has_visits(store: SQLiteStore) -> bool:
    async with store.db.execute("SELECT 1 FROM visitors LIMIT 1") as cursor:
        return await cursor.fetchone() is not None
