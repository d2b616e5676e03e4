"""``campusguard probe-stream URL``: connect as the pipeline would and report what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from campusguard.sdk import AuthFailed, CameraSource, ComponentContext, ConfigError, Incident

from .bus import InProcessBus
from .plugin_manager import PluginHost


@dataclass
class ProbeReport:
    url: str
    kind: str
    ok: bool = False
    error: str | None = None
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    stream_fps: float | None = None
    seconds: float = 0.0
    decoded: int = 0
    decoded_fps: float = 0.0
    delivered: int = 0
    dropped: int = 0
    reconnects: int = 0
    first_frame_s: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_text(self) -> str:
        lines = [f"{self.url} ({self.kind})"]
        if self.error:
            lines.append(f"  error:       {self.error}")
        if self.codec:
            lines.append(f"  codec:       {self.codec}")
        if self.width:
            lines.append(f"  resolution:  {self.width}x{self.height}")
        if self.stream_fps:
            lines.append(f"  stream rate: {self.stream_fps:.2f} fps (declared)")
        lines.append(f"  decoded:     {self.decoded} frames in {self.seconds:.1f} s ({self.decoded_fps:.1f} fps)")
        lines.append(f"  delivered:   {self.delivered} frames at the detection rate; dropped {self.dropped}")
        lines.append(f"  reconnects:  {self.reconnects}")
        if self.first_frame_s is not None:
            lines.append(f"  first frame: after {self.first_frame_s:.2f} s")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)


class _ProbeCore:
    """Just enough of a core for one camera source on its own."""

    def __init__(self, data_dir: Path) -> None:
        self.bus = InProcessBus()
        self.data_dir = data_dir

    def camera(self, camera_id: str) -> None:
        return None

    def camera_ids(self) -> list[str]:
        return []

    async def raise_incident(self, incident: Incident, targets: Sequence[str] | None = None) -> Incident:
        return incident


def kind_for(url: str) -> str:
    if url.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if url.startswith(("http://", "https://")):
        return "snapshot"
    return "file"


def _options(kind: str, url: str, transport: str, username: str | None, password: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"tamper": {"enabled": False}}
    if kind == "file":
        return {**options, "path": url, "realtime": True, "loop": False}
    options["url"] = url
    if kind == "rtsp":
        options["transport"] = transport
    if username:
        options["username"], options["password"] = username, password
    return options


async def probe(
    url: str, *, seconds: float, transport: str = "tcp", username: str | None = None, password: str | None = None
) -> ProbeReport:
    kind = kind_for(url)
    report = ProbeReport(url=url, kind=kind)
    host = PluginHost()
    host.load_entry_points()
    registration = host.collect_registrations()["camera_sources"].get(kind)
    if registration is None:
        report.error = f"no camera source of type {kind!r} is installed"
        return report
    cls = registration.cls
    config = cls.Config.model_validate(_options(kind, url, transport, username, password))
    core = _ProbeCore(Path.cwd())
    context = ComponentContext("probe", logging.getLogger("campusguard.probe"), core, Path.cwd(), Path.cwd())
    source = cls("probe", config, context)
    assert isinstance(source, CameraSource)
    started = time.monotonic()
    try:
        await source.start()
        frames = source.frames()
        deadline = started + seconds
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                async for _ in frames:
                    if report.first_frame_s is None:
                        report.first_frame_s = time.monotonic() - started
                    if time.monotonic() >= deadline:
                        break
    except (AuthFailed, ConfigError) as exc:
        report.error = str(exc)
    except Exception as exc:
        report.error = f"{type(exc).__name__}: {exc}"
    finally:
        await source.stop()
        await core.bus.close()
    stats = source.stats
    report.seconds = time.monotonic() - started
    report.codec, report.width, report.height, report.stream_fps = (
        stats.codec,
        stats.width,
        stats.height,
        stats.stream_fps,
    )
    report.decoded, report.delivered, report.dropped, report.reconnects = (
        stats.decoded, stats.delivered, stats.dropped, stats.reconnects,
    )  # fmt: skip
    report.decoded_fps = stats.decoded / report.seconds if report.seconds else 0.0
    if report.error is None and stats.decoded == 0:
        report.error = stats.last_error or "no frames arrived"
    report.ok = report.error is None
    if report.stream_fps and report.ok and report.decoded_fps < 0.8 * report.stream_fps and kind == "rtsp":
        report.notes.append("decoded rate is well below the declared rate: the network or the camera drops frames")
    return report
