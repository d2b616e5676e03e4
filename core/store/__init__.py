"""Persistence: incidents, the append-only audit log and the durable outbox."""

from .base import AuditEntry, DueJob, Job, OutboxEntry, Store
from .migrations import SCHEMA_VERSION
from .sqlite import SQLiteStore, StoreError

__all__ = ["SCHEMA_VERSION", "AuditEntry", "DueJob", "Job", "OutboxEntry", "SQLiteStore", "Store", "StoreError"]
