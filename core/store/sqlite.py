"""The embedded store: SQLite in WAL mode through aiosqlite (its own thread, never the loop)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from campusguard.sdk import Incident
from campusguard.sdk.models import utc_now

from .base import AuditEntry, OutboxEntry
from .migrations import MIGRATIONS, SCHEMA_VERSION


class StoreError(Exception):
    pass


class SQLiteStore:
    """Incidents, the append-only audit log and the outbox in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One connection is shared by every task: writes take turns so none lands inside
        # another's transaction.
        self._write_lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("store is not open")
        return self._db

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = await aiosqlite.connect(self.path, isolation_level=None)
        await self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a delivery accepted before kill -9 or power loss is on disk.
        await self._db.execute("PRAGMA synchronous=FULL")
        await self._db.execute("PRAGMA foreign_keys=ON")
        await self._db.execute("PRAGMA busy_timeout=5000")
        await self._migrate()

    async def _migrate(self) -> None:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has schema version {version}, newer than this campusguard ({SCHEMA_VERSION}); "
                "upgrade campusguard or point data_dir elsewhere"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; wrap each migration and its version bump together.
            await self.db.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    async def schema_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()
            # aiosqlite's worker thread ends just after close(); wait for it so no thread outlives us.
            thread = getattr(db, "_thread", None)
            for _ in range(400):  # up to 2 s, without starting an executor thread to join it
                if thread is None or not thread.is_alive():
                    break
                await asyncio.sleep(0.005)

    # -- incidents and outbox --------------------------------------------------------------------

    async def record_incident(
        self, incident: Incident, targets: Sequence[str], *, actor: str | None = None,
        action: str | None = None, detail: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Upsert the incident and queue its deliveries; audit it in the same transaction.

        The audit entry is ``incident.raised`` the first time, ``incident.updated`` after, or
        ``action`` (by ``actor``, with ``detail``) when a person changed it.
        """
        now = utc_now().isoformat()
        body = incident.model_dump_json()
        db = self.db
        async with self._write_lock:
            await self._record(db, incident, targets, now, body, (actor, action, detail))

    async def _record(
        self, db: aiosqlite.Connection, incident: Incident, targets: Sequence[str], now: str, body: str,
        audit: tuple[str | None, str | None, dict[str, Any] | None],
    ) -> None:  # fmt: skip
        await db.execute("BEGIN IMMEDIATE")
        try:
            async with db.execute("SELECT 1 FROM incidents WHERE id = ?", (incident.id,)) as cursor:
                existed = await cursor.fetchone() is not None
            await db.execute(
                "INSERT INTO incidents (id, kind, status, exercise, created_at, updated_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(id) DO UPDATE SET status=excluded.status, updated_at=excluded.updated_at,"
                " body=excluded.body",
                (
                    incident.id,
                    str(incident.kind),
                    str(incident.status),
                    int(incident.exercise),
                    incident.created_at.isoformat(),
                    now,
                    body,
                ),
            )
            await db.executemany(
                "INSERT OR IGNORE INTO outbox (idempotency_key, target, incident_id, payload, status,"
                " next_attempt_at, enqueued_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                [(incident.delivery_key(t), t, incident.id, body, time.time(), now) for t in targets],
            )
            actor, action, detail = audit
            await self._insert_audit(
                actor or incident.source or "core",
                action or ("incident.updated" if existed else "incident.raised"),
                incident.id,
                detail or {"kind": str(incident.kind), "exercise": incident.exercise, "targets": list(targets)},
            )
            await db.execute("COMMIT")
        except BaseException:
            await db.execute("ROLLBACK")
            raise

    async def get_incident(self, incident_id: str) -> Incident | None:
        async with self.db.execute("SELECT body FROM incidents WHERE id = ?", (incident_id,)) as cursor:
            row = await cursor.fetchone()
        return Incident.model_validate_json(row[0]) if row else None

    async def list_incidents(self, limit: int = 100) -> list[Incident]:
        async with self.db.execute("SELECT body FROM incidents ORDER BY created_at DESC LIMIT ?", (limit,)) as cursor:
            rows = await cursor.fetchall()
        return [Incident.model_validate_json(r[0]) for r in rows]

    async def next_delivery(self, target: str) -> OutboxEntry | None:
        async with self.db.execute(
            "SELECT seq, idempotency_key, target, incident_id, payload, attempts, next_attempt_at FROM outbox"
            " WHERE target = ? AND status = 'pending' ORDER BY seq LIMIT 1",
            (target,),
        ) as cursor:
            row = await cursor.fetchone()
        return OutboxEntry(*row) if row else None

    async def mark_delivered(self, seq: int) -> None:
        async with self._write_lock:
            await self.db.execute(
                "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = ?, last_error = NULL"
                " WHERE seq = ?",
                (utc_now().isoformat(), seq),
            )

    async def mark_retry(self, seq: int, error: str, next_attempt_at: float) -> None:
        async with self._write_lock:
            await self.db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE seq = ?",
                (error[:2000], next_attempt_at, seq),
            )

    async def pending_targets(self) -> list[str]:
        async with self.db.execute("SELECT DISTINCT target FROM outbox WHERE status = 'pending'") as cursor:
            rows = await cursor.fetchall()
        return [r[0] for r in rows]

    async def delivery_counts(self) -> dict[str, dict[str, int]]:
        """``{target: {status: count}}``, for the CLI and tests."""
        async with self.db.execute("SELECT target, status, COUNT(*) FROM outbox GROUP BY target, status") as cursor:
            rows = await cursor.fetchall()
        counts: dict[str, dict[str, int]] = {}
        for target, status, count in rows:
            counts.setdefault(target, {})[status] = count
        return counts

    # -- audit log -------------------------------------------------------------------------------

    async def _insert_audit(self, actor: str, action: str, subject: str, detail: dict[str, Any]) -> None:
        await self.db.execute(
            "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
            (utc_now().isoformat(), actor, action, subject, json.dumps(detail, default=str)),
        )

    async def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> None:
        async with self._write_lock:
            await self._insert_audit(actor, action, subject, detail or {})

    async def audit_entries(self, limit: int = 1000) -> list[AuditEntry]:
        async with self.db.execute(
            "SELECT seq, at, actor, action, subject, detail FROM audit_log ORDER BY seq LIMIT ?", (limit,)
        ) as cursor:
            rows = await cursor.fetchall()
        return [AuditEntry(r[0], r[1], r[2], r[3], r[4], json.loads(r[5])) for r in rows]
