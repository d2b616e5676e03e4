"""Evidence: clips remuxed from a per-camera packet ring buffer, snapshots, sha256, retention."""

from .clip import ClipWritten, write_clip
from .files import WrittenFile, evidence_path, sha256_of
from .recorder import EvidenceRecorder
from .snapshot import SnapshotRequest, render, write_snapshot

__all__ = [
    "ClipWritten",
    "EvidenceRecorder",
    "SnapshotRequest",
    "WrittenFile",
    "evidence_path",
    "render",
    "sha256_of",
    "write_clip",
    "write_snapshot",
]
