"""Persistence: incidents, the append-only audit log and the durable outbox."""

from .base import AuditEntry, OutboxEntry, Store
from .migrations import SCHEMA_VERSION
from .sqlite import SQLiteStore, StoreError

__all__ = ["SCHEMA_VERSION", "AuditEntry", "OutboxEntry", "SQLiteStore", "Store", "StoreError"]
