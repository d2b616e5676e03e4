"""Where evidence files live, how they are written (atomically, hashed), and how long they are kept.

``<data_dir>/evidence/YYYY-MM-DD/<incident id>.jpg|.mp4``: the day is the incident's, in the
host's time zone (what the people looking for it think of as "that day"). A file is written under
a temporary name and renamed once complete and flushed, so a file with the final name is whole.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

EVIDENCE_DIR = "evidence"
PARTIAL = ".part"
_CHUNK = 1 << 20
_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class WrittenFile:
    path: Path
    sha256: str
    size: int


def file_stem(incident_id: str) -> str:
    """The id itself (a uuid hex by default); a plugin's id that is no safe file name is hashed."""
    if _SAFE_NAME.fullmatch(incident_id):
        return incident_id
    return hashlib.sha256(incident_id.encode()).hexdigest()[:32]


def evidence_path(data_dir: Path, incident_id: str, created_at: datetime, suffix: str) -> Path:
    day = created_at.astimezone().strftime("%Y-%m-%d")
    return data_dir / EVIDENCE_DIR / day / f"{file_stem(incident_id)}{suffix}"


def partial_path(path: Path) -> Path:
    return path.with_name(f".{path.name}{PARTIAL}")


def write_bytes(path: Path, data: bytes) -> WrittenFile:
    """Write ``data`` to ``path`` atomically; the sha256 is of exactly the bytes written."""
    digest = hashlib.sha256(data).hexdigest()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    with open(partial, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(partial, path)
    return WrittenFile(path, digest, len(data))


def seal(partial: Path, path: Path) -> WrittenFile:
    """Hash a finished temporary file (read back in one pass, flushing it), then give it its name."""
    digest = hashlib.sha256()
    size = 0
    with open(partial, "rb+") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
        os.fsync(file.fileno())
    os.replace(partial, path)
    return WrittenFile(path, digest.hexdigest(), size)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class Expired:
    path: Path  # relative to the evidence folder
    incident_id: str
    age_days: float
    size: int


def expired(data_dir: Path, retention_days: float, now: float | None = None) -> Iterator[tuple[Path, Expired]]:
    """Evidence files (and leftover partial files) older than ``retention_days`` by modification time."""
    root = data_dir / EVIDENCE_DIR
    if retention_days <= 0 or not root.is_dir():
        return
    now = time.time() if now is None else now
    cutoff = now - retention_days * 86400
    for day in sorted(root.iterdir()):
        if not day.is_dir():
            continue
        for file in sorted(day.iterdir()):
            try:
                info = file.stat()
            except FileNotFoundError:
                continue
            if not file.is_file() or info.st_mtime >= cutoff:
                continue
            name = file.name.removeprefix(".").removesuffix(PARTIAL)
            yield file, Expired(file.relative_to(root), name.split(".")[0], (now - info.st_mtime) / 86400, info.st_size)


def remove_empty_days(data_dir: Path) -> None:
    root = data_dir / EVIDENCE_DIR
    if not root.is_dir():
        return
    for day in root.iterdir():
        if day.is_dir():
            try:
                day.rmdir()  # only succeeds when empty
            except OSError:
                pass
