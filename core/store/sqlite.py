"""The embedded store: SQLite in WAL mode through aiosqlite (its own thread, never the loop)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiosqlite

from campusguard.sdk import Incident
from campusguard.sdk.models import utc_now

from .base import AuditEntry, DueJob, Job, OutboxEntry
from .migrations import MIGRATIONS, SCHEMA_VERSION


class StoreError(Exception):
    pass


# Decides, inside the transaction, what a change does: edits the incident in place and returns
# False to leave everything as it was.
Mutation = Callable[[Incident], bool]
# Given the changed incident and the targets that already received any version of it: who gets this one.
TargetChoice = Callable[[Incident, list[str]], Sequence[str]]


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
        action: str | None = None, detail: dict[str, Any] | None = None, jobs: Sequence[Job] = (),
    ) -> None:  # fmt: skip
        """Upsert the incident, queue its deliveries and schedule its jobs; audit it, all in one transaction.

        The audit entry is ``incident.raised`` the first time, ``incident.updated`` after, or
        ``action`` (by ``actor``, with ``detail``) when a person changed it.
        """
        db = self.db
        async with self._write_lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute("SELECT 1 FROM incidents WHERE id = ?", (incident.id,)) as cursor:
                    existed = await cursor.fetchone() is not None
                await self._write(db, incident, targets, existed, (actor, action, detail), jobs)
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise

    async def change_incident(
        self, incident_id: str, mutate: Mutation, *, targets: TargetChoice | None = None, actor: str,
        action: str, detail: dict[str, Any] | None = None, jobs: Callable[[Incident], Sequence[Job]] | None = None,
    ) -> Incident | None:  # fmt: skip
        """Read, change and write an incident in one immediate transaction.

        Every writer (the rules, the lifecycle, the CLI in another process) changes incidents this way,
        so none overwrites another's change with a stale copy. Returns the new version, or None when
        the incident does not exist or ``mutate`` declined.
        """
        db = self.db
        async with self._write_lock:
            await db.execute("BEGIN IMMEDIATE")
            try:
                async with db.execute("SELECT body FROM incidents WHERE id = ?", (incident_id,)) as cursor:
                    row = await cursor.fetchone()
                incident = Incident.model_validate_json(row[0]) if row else None
                if incident is None or not mutate(incident):
                    await db.execute("ROLLBACK")
                    return None
                chosen: Sequence[str] = ()
                if targets is not None:
                    chosen = targets(incident, await self._targets_of(db, incident_id))
                await self._write(db, incident, chosen, True, (actor, action, detail), jobs(incident) if jobs else ())
                await db.execute("COMMIT")
            except BaseException:
                await db.execute("ROLLBACK")
                raise
        return incident

    async def _targets_of(self, db: aiosqlite.Connection, incident_id: str) -> list[str]:
        async with db.execute(
            "SELECT target FROM outbox WHERE incident_id = ? GROUP BY target ORDER BY MIN(seq)", (incident_id,)
        ) as cursor:
            return [r[0] for r in await cursor.fetchall()]

    async def targets_of(self, incident_id: str) -> list[str]:
        """Every target that was sent any version of the incident, in the order they were first queued."""
        return await self._targets_of(self.db, incident_id)

    async def _write(
        self, db: aiosqlite.Connection, incident: Incident, targets: Sequence[str], existed: bool,
        audit: tuple[str | None, str | None, dict[str, Any] | None], jobs: Sequence[Job],
    ) -> None:  # fmt: skip
        now = utc_now().isoformat()
        body = incident.model_dump_json()
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
        await db.executemany(
            "INSERT OR IGNORE INTO jobs (key, incident_id, kind, payload, due_at, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            [(j.key, j.incident_id, j.kind, json.dumps(j.payload), j.due_at, now) for j in jobs],
        )
        actor, action, detail = audit
        await self._insert_audit(
            actor or incident.source or "core",
            action or ("incident.updated" if existed else "incident.raised"),
            incident.id,
            detail or {"kind": str(incident.kind), "exercise": incident.exercise, "targets": list(targets)},
        )

    async def enqueue_deliveries(self, incident: Incident, targets: Sequence[str]) -> None:
        """Queue this version of the incident for ``targets`` (idempotent per version and target)."""
        now = utc_now().isoformat()
        body = incident.model_dump_json()
        async with self._write_lock:
            await self.db.executemany(
                "INSERT OR IGNORE INTO outbox (idempotency_key, target, incident_id, payload, status,"
                " next_attempt_at, enqueued_at) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                [(incident.delivery_key(t), t, incident.id, body, time.time(), now) for t in targets],
            )

    # -- jobs --------------------------------------------------------------------------------------

    async def schedule_jobs(self, jobs: Sequence[Job]) -> None:
        now = utc_now().isoformat()
        async with self._write_lock:
            await self.db.executemany(
                "INSERT OR IGNORE INTO jobs (key, incident_id, kind, payload, due_at, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(j.key, j.incident_id, j.kind, json.dumps(j.payload), j.due_at, now) for j in jobs],
            )

    async def next_job_due(self) -> float | None:
        """When the earliest pending job is due (epoch seconds), or None."""
        async with self.db.execute("SELECT MIN(due_at) FROM jobs WHERE status = 'pending'") as cursor:
            row = await cursor.fetchone()
        return float(row[0]) if row and row[0] is not None else None

    async def due_jobs(self, now: float, limit: int = 50) -> list[DueJob]:
        async with self.db.execute(
            "SELECT seq, key, incident_id, kind, payload, due_at, attempts FROM jobs"
            " WHERE status = 'pending' AND due_at <= ? ORDER BY due_at, seq LIMIT ?",
            (now, limit),
        ) as cursor:
            rows = await cursor.fetchall()
        return [DueJob(r[0], Job(r[1], r[2], r[3], r[5], json.loads(r[4])), r[6]) for r in rows]

    async def finish_job(self, seq: int, *, failed: str | None = None) -> None:
        async with self._write_lock:
            await self.db.execute(
                "UPDATE jobs SET status = ?, attempts = attempts + 1, last_error = ?, done_at = ? WHERE seq = ?",
                ("failed" if failed else "done", failed, utc_now().isoformat(), seq),
            )

    async def retry_job(self, seq: int, error: str, due_at: float) -> None:
        async with self._write_lock:
            await self.db.execute(
                "UPDATE jobs SET attempts = attempts + 1, last_error = ?, due_at = ? WHERE seq = ?",
                (error[:2000], due_at, seq),
            )

    async def jobs_of(self, incident_id: str) -> list[tuple[str, str, str]]:
        """``(key, kind, status)`` of every job of an incident, for the CLI and tests."""
        async with self.db.execute(
            "SELECT key, kind, status FROM jobs WHERE incident_id = ? ORDER BY seq", (incident_id,)
        ) as cursor:
            return [(r[0], r[1], r[2]) for r in await cursor.fetchall()]

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

    async def deliveries_of(self, incident_id: str) -> list[dict[str, Any]]:
        """Every delivery of every version of an incident, in queue order (for ``incidents show``)."""
        async with self.db.execute(
            "SELECT idempotency_key, target, status, attempts, enqueued_at, delivered_at, last_error,"
            " json_extract(payload, '$.revision'), json_extract(payload, '$.change') FROM outbox"
            " WHERE incident_id = ? ORDER BY seq",
            (incident_id,),
        ) as cursor:
            rows = await cursor.fetchall()
        keys = (
            "key",
            "target",
            "status",
            "attempts",
            "enqueued_at",
            "delivered_at",
            "last_error",
            "revision",
            "change",
        )
        return [dict(zip(keys, row, strict=True)) for row in rows]

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
