"""``campusguard discover --add``: write found cameras into plugins.toml, keeping its comments and layout.

Each new camera becomes ``[cameras.<slug>]`` with ``type = "onvif"``, its host and port, and its
credentials as ``{ env = "..." }`` references: a secret never lands in the file. A camera already
configured (same host and port, or an RTSP URL on that host) is skipped, so running it twice adds
nothing. New tables go at the end of the file; nothing already there is touched.
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import tomlkit
from tomlkit.items import Table

from .discovery import DiscoveredDevice


def slug_for(device: DiscoveredDevice) -> str:
    """``gym_north`` from the name scope, else from the address (``camera_10_0_0_5``)."""
    base = device.name or (device.info.model if device.info else None) or ""
    slug = re.sub(r"[^a-z0-9]+", "_", base.casefold()).strip("_")
    if not slug or slug[0].isdigit():
        slug = "camera_" + (slug or re.sub(r"[^0-9a-z]+", "_", device.host.casefold()).strip("_"))
    return slug


def env_names(slug: str) -> tuple[str, str]:
    """The environment variables a camera's credentials are read from."""
    stem = f"CAMPUSGUARD_{slug.upper()}"
    return f"{stem}_USERNAME", f"{stem}_PASSWORD"


def add_cameras_to_config(
    path: str | os.PathLike[str],
    devices: Iterable[DiscoveredDevice],
    *,
    username_env: str | None = None,
    password_env: str | None = None,
) -> list[str]:
    """Add each device not yet in ``path`` as ``[cameras.<slug>]``; return the slugs added.

    The new tables are appended at the end, so everything already in the file stays exactly as
    it was. The credentials point at ``username_env``/``password_env`` when given (one account
    for all cameras), else at per-camera variables (:func:`env_names`). The result is checked
    to parse before it replaces the file, atomically.
    """
    file = Path(path)
    text = file.read_text(encoding="utf-8") if file.exists() else ""
    cameras = tomllib.loads(text).get("cameras", {})
    if not isinstance(cameras, dict):
        raise ValueError(f"{file}: 'cameras' is not a table")
    entries = [entry for entry in cameras.values() if isinstance(entry, dict)]
    present = {_endpoint(entry) for entry in entries}
    by_url = {urlsplit(str(entry["url"])).hostname for entry in entries if "url" in entry}
    taken = set(cameras)
    added: list[str] = []
    blocks: list[str] = []
    for device in devices:
        if (device.host, device.port) in present or device.host in by_url:  # by_url: configured by its RTSP URL
            continue
        slug = _unique(slug_for(device), taken)
        user_var, password_var = env_names(slug)
        blocks.append(_camera_block(slug, device, username_env or user_var, password_env or password_var))
        present.add((device.host, device.port))
        taken.add(slug)
        added.append(slug)
    if added:
        head = text.rstrip("\n") + "\n\n" if text.strip() else ""
        result = head + "\n".join(blocks)
        try:
            tomllib.loads(result)
        except tomllib.TOMLDecodeError as exc:  # e.g. `cameras = { ... }` written inline takes no more tables
            raise ValueError(f"{file}: cannot add [cameras.*] tables to this file ({exc}); add them by hand") from exc
        _write_atomically(file, result)
    return added


def _camera_block(slug: str, device: DiscoveredDevice, user_var: str, password_var: str) -> str:
    """``[cameras.<slug>]`` and its keys, as TOML text (tomlkit does the quoting)."""
    cameras = tomlkit.table(is_super_table=True)
    cameras.add(slug, _camera_table(device, user_var, password_var))
    document = tomlkit.document()
    document.add("cameras", cameras)
    return tomlkit.dumps(document)


def _camera_table(device: DiscoveredDevice, user_var: str, password_var: str) -> Table:
    table = tomlkit.table()
    what = " ".join(v for v in (device.info.manufacturer, device.info.model) if v) if device.info else ""
    table.add(
        tomlkit.comment(f"found by `campusguard discover` on {date.today().isoformat()}{': ' + what if what else ''}")
    )
    table.add("type", "onvif")
    table.add("host", device.host)
    table.add("port", device.port)
    for key, variable in (("username", user_var), ("password", password_var)):
        reference = tomlkit.inline_table()
        reference.add("env", variable)
        table.add(key, reference)
    return table


def _endpoint(entry: Mapping[str, Any]) -> tuple[str, int]:
    return str(entry.get("host", "")), int(entry.get("port", 80))


def _unique(slug: str, taken: set[str]) -> str:
    candidate, n = slug, 2
    while candidate in taken:
        candidate, n = f"{slug}_{n}", n + 1
    return candidate


def _write_atomically(file: Path, text: str) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    mode = file.stat().st_mode & 0o777 if file.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=file.parent, prefix=f".{file.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, file)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
