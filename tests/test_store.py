"""The SQLite store: WAL, versioned migrations, one-transaction incident + outbox, append-only audit."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from campusguard.core.store import SCHEMA_VERSION, SQLiteStore, StoreError
from campusguard.sdk.testing import make_incident


@pytest.fixture
async def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SQLiteStore(tmp_path / "cg.db")
    await s.open()
    yield s
    await s.close()


async def test_schema_is_migrated_and_in_wal_mode(store: SQLiteStore) -> None:
    assert await store.schema_version() == SCHEMA_VERSION
    async with store.db.execute("PRAGMA journal_mode") as cursor:
        assert (await cursor.fetchone())[0] == "wal"  # type: ignore[index]


async def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path: Path) -> None:
    path = tmp_path / "cg.db"
    first = SQLiteStore(path)
    await first.open()
    incident = make_incident()
    await first.record_incident(incident, ["a"])
    await first.close()
    second = SQLiteStore(path)
    await second.open()
    assert (await second.get_incident(incident.id)) == incident
    assert await second.schema_version() == SCHEMA_VERSION
    await second.close()


async def test_a_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "cg.db"
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    store = SQLiteStore(path)
    with pytest.raises(StoreError, match="newer than this campusguard"):
        await store.open()
    await store.close()


async def test_incident_and_deliveries_are_one_transaction(store: SQLiteStore) -> None:
    incident = make_incident(exercise=True)
    await store.record_incident(incident, ["sms", "webhook"])
    counts = await store.delivery_counts()
    assert counts == {"sms": {"pending": 1}, "webhook": {"pending": 1}}
    entry = await store.next_delivery("sms")
    assert entry is not None and entry.idempotency_key == f"{incident.id}:sms"
    await store.mark_delivered(entry.seq)
    assert await store.next_delivery("sms") is None
    (audit,) = await store.audit_entries()
    assert (audit.action, audit.subject, audit.detail["exercise"]) == ("incident.raised", incident.id, True)


async def test_failed_transaction_leaves_nothing(store: SQLiteStore) -> None:
    incident = make_incident()

    class Boom(str):
        pass

    with pytest.raises(sqlite3.Error):
        # A target that is not a string makes the outbox insert fail after the incident insert.
        await store.record_incident(incident, [object()])  # type: ignore[list-item]
    assert await store.get_incident(incident.id) is None
    assert await store.audit_entries() == []


async def test_recording_twice_does_not_duplicate_deliveries(store: SQLiteStore) -> None:
    incident = make_incident()
    await store.record_incident(incident, ["a"])
    await store.record_incident(incident, ["a"])
    assert (await store.delivery_counts()) == {"a": {"pending": 1}}
    assert [e.action for e in await store.audit_entries()] == ["incident.raised", "incident.updated"]


async def test_deliveries_come_out_in_order_per_target(store: SQLiteStore) -> None:
    incidents = [make_incident() for _ in range(5)]
    for incident in incidents:
        await store.record_incident(incident, ["a"])
    seen = []
    while (entry := await store.next_delivery("a")) is not None:
        seen.append(entry.incident_id)
        await store.mark_delivered(entry.seq)
    assert seen == [i.id for i in incidents]


async def test_audit_log_is_append_only(store: SQLiteStore) -> None:
    await store.audit("alice", "door.unlock", "door-1", {"reason": "test"})
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await store.db.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await store.db.execute("DELETE FROM audit_log")
    (entry,) = await store.audit_entries()
    assert entry.actor == "alice"


async def test_closed_store_says_so(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="not open"):
        await SQLiteStore(tmp_path / "x.db").get_incident("x")
