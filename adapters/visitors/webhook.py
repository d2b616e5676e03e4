"""What any signed visitor-system webhook needs: signature check, replay guard, strict body reading.

Nothing here knows Envoy's body shape or aiohttp: :mod:`.envoy` puts them together. Every check
raises :class:`Rejected` with the HTTP status and a reason meant for the sender's delivery log
(never a secret, never the body).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any


class Rejected(Exception):
    """A webhook that is answered ``status`` with ``reason`` and not processed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def sign(secret: bytes, body: bytes) -> str:
    """Base64 of the HMAC-SHA256 of ``body`` keyed with ``secret`` (Envoy's ``X-Envoy-Signature``)."""
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode("ascii")


def verify_signature(secret: bytes, body: bytes, header: str | None, *, header_name: str) -> None:
    """Raise ``Rejected(401)`` unless ``header`` is the signature of the raw ``body``.

    The comparison is on the decoded digest and takes constant time.
    """
    if header is None or not header.strip():
        raise Rejected(401, f"missing {header_name} header: the webhook is not signed")
    expected = hmac.new(secret, body, hashlib.sha256).digest()
    try:
        received = base64.b64decode(header.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise Rejected(401, f"{header_name} is not Base64: signature does not match") from None
    if not hmac.compare_digest(expected, received):
        raise Rejected(401, f"{header_name} does not match the body: wrong client secret or a forged request")


def parse_json_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise Rejected(400, "empty body: expected a JSON object with meta and payload")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Rejected(400, f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Rejected(400, f"body is a JSON {type(data).__name__}, expected an object with meta and payload")
    return data


def field(data: Mapping[str, Any], path: str, kind: type | tuple[type, ...], *, required: bool = True) -> Any:
    """The value at dotted ``path`` (``"payload.attributes.full-name"``), checked to be of ``kind``.

    Missing or null: None when not ``required``, else ``Rejected(400)`` naming the first part missing.
    """
    value: Any = data
    walked: list[str] = []
    for part in path.split("."):
        if not isinstance(value, Mapping):
            raise Rejected(400, f"{'.'.join(walked)} is not an object (needed for {path})")
        walked.append(part)
        value = value.get(part)
        if value is None:
            if required:
                raise Rejected(400, f"{'.'.join(walked)} is missing")
            return None
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
        expected = " or ".join(t.__name__ for t in _types(kind))
        raise Rejected(400, f"{path} must be {expected}, not {type(value).__name__}")
    return value


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def parse_time(value: Any, path: str) -> datetime:
    """A timestamp as senders write them: ISO 8601, RFC 1123 (``Date.toUTCString()``) or UNIX seconds.

    A time without a zone is taken as UTC. ``Rejected(400)`` names ``path`` when it is none of these.
    """
    parsed: datetime | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError, OSError, ValueError):
            parsed = datetime.fromtimestamp(float(value), UTC)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
        except ValueError:
            with contextlib.suppress(TypeError, ValueError, IndexError):
                parsed = parsedate_to_datetime(text)
    if parsed is None:
        raise Rejected(400, f"{path} is not a timestamp (ISO 8601, RFC 1123 or UNIX seconds): {str(value)[:60]!r}")
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def check_age(at: datetime, max_age: float, path: str, *, now: float | None = None) -> None:
    """Refuse (409) an event older than ``max_age`` seconds, or as far in the future (a wrong clock)."""
    age = (time.time() if now is None else now) - at.timestamp()
    if age > max_age:
        raise Rejected(
            409, f"{path} is {age:.0f} s old, older than max_age_seconds={max_age:g}: refused as a possible replay"
        )
    if age < -max_age:
        raise Rejected(409, f"{path} is {-age:.0f} s in the future (more than {max_age:g} s): check the sender's clock")


def body_key(body: bytes) -> str:
    return "body:" + hashlib.sha256(body).hexdigest()


class ReplayGuard:
    """Remembers what was accepted, by every key it is known by, for ``keep_seconds``.

    Keep them at least as long as the age check accepts an event: within that window a replay is
    found here, after it the age check refuses it. The state lives in one JSON file (written
    atomically) together with whatever else the owner keeps (``extra``), so it survives restarts.
    """

    def __init__(self, path: Path | None, keep_seconds: float) -> None:
        self.path = path
        self.keep_seconds = keep_seconds
        self._seen: dict[str, float] = {}  # key -> when it may be forgotten (UNIX time)
        self._written = 0  # the version on disk; writes of older versions are skipped
        self._version = 0
        self._file_lock = threading.Lock()

    def load(self) -> dict[str, Any]:
        """Read the file (when there is one); return the owner's ``extra`` state."""
        self._seen.clear()
        if self.path is None or not self.path.exists():
            return {}
        try:
            state = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}  # a damaged file is not worth refusing to start over: Envoy's retries stay idempotent
        now = time.time()
        seen = state.get("seen", {}) if isinstance(state, dict) else {}
        if isinstance(seen, dict):
            self._seen = {str(k): float(v) for k, v in seen.items() if isinstance(v, int | float) and v > now}
        extra = state.get("extra", {}) if isinstance(state, dict) else {}
        return extra if isinstance(extra, dict) else {}

    def seen(self, keys: Iterable[str]) -> bool:
        now = time.time()
        return any(self._seen.get(key, 0.0) > now for key in keys)

    def remember(self, keys: Iterable[str]) -> None:
        now = time.time()
        until = now + self.keep_seconds
        for key in keys:
            self._seen[key] = until
        if len(self._seen) > 1024:
            self._seen = {k: v for k, v in self._seen.items() if v > now}
        self._version += 1

    def snapshot(self, extra: dict[str, Any]) -> tuple[int, str]:
        """What to write now (on the loop); :meth:`write` it in a thread."""
        return self._version, json.dumps({"version": 1, "seen": self._seen, "extra": extra})

    def write(self, version: int, text: str) -> None:
        """Replace the file with ``text`` unless a newer version is already there. Runs in a thread."""
        if self.path is None:
            return
        with self._file_lock:
            if version < self._written:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".state-", dir=self.path.parent)
            try:
                with os.fdopen(fd, "w") as handle:
                    handle.write(text)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._written = version
