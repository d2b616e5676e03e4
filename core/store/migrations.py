"""Versioned schema migrations, applied in order; ``PRAGMA user_version`` holds the version."""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: incidents, an append-only audit log and the durable outbox.
    """
    CREATE TABLE incidents (
        id          TEXT PRIMARY KEY,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL,
        exercise    INTEGER NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        body        TEXT NOT NULL
    );
    CREATE INDEX incidents_created ON incidents(created_at);

    CREATE TABLE audit_log (
        seq     INTEGER PRIMARY KEY AUTOINCREMENT,
        at      TEXT NOT NULL,
        actor   TEXT NOT NULL,
        action  TEXT NOT NULL,
        subject TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

    CREATE TABLE outbox (
        seq              INTEGER PRIMARY KEY AUTOINCREMENT,
        idempotency_key  TEXT NOT NULL UNIQUE,
        target           TEXT NOT NULL,
        incident_id      TEXT NOT NULL REFERENCES incidents(id),
        payload          TEXT NOT NULL,
        status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  REAL NOT NULL,
        last_error       TEXT,
        enqueued_at      TEXT NOT NULL,
        delivered_at     TEXT
    );
    CREATE INDEX outbox_pending ON outbox(target, status, seq);
    """,
    # 2: durable scheduled work of the incident lifecycle: delayed actions, escalations, and the
    # reactions to a person's status change (made by the CLI, possibly while the core is down).
    """
    CREATE TABLE jobs (
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        key          TEXT NOT NULL UNIQUE,
        incident_id  TEXT NOT NULL REFERENCES incidents(id),
        kind         TEXT NOT NULL,
        payload      TEXT NOT NULL DEFAULT '{}',
        due_at       REAL NOT NULL,
        status       TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT,
        created_at   TEXT NOT NULL,
        done_at      TEXT
    );
    CREATE INDEX jobs_due ON jobs(status, due_at);
    CREATE INDEX outbox_incident ON outbox(incident_id);
    """,
    # 3: the visitor roster (core/visitors): who signed in and not out, per visitor system. Ids are the
    # visitor system's opaque ids; no photo, no contact details. Times are UTC ISO 8601.
    """
    CREATE TABLE visitors (
        visitor_id     TEXT NOT NULL,
        source         TEXT NOT NULL,
        display_name   TEXT NOT NULL,
        host           TEXT,
        location       TEXT,
        signed_in_at   TEXT NOT NULL,
        signed_out_at  TEXT,
        updated_at     TEXT NOT NULL,
        PRIMARY KEY (source, visitor_id)
    );
    CREATE INDEX visitors_on_site ON visitors(signed_out_at, signed_in_at);
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
