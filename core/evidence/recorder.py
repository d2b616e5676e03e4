"""The evidence recorder: a snapshot with the first delivery, a clip shortly after, old files swept.

- ``attach_snapshot(incident)`` runs before the incident is stored, so notifiers get the snapshot
  with the first delivery. It is bounded (``snapshot_timeout``) and never fails the incident: a
  late snapshot is attached later with the clip; an error is logged and the incident goes on.
- ``schedule_clip(incident)`` waits until ``post_seconds`` after the incident's frame, remuxes
  the camera's packets (see :mod:`.clip`) and stores a new version of the incident with
  ``change = "evidence"``, through ``update_incident``: no new revision, no new deliveries.
- Files older than ``retention_days`` are deleted at start and every hour, each deletion audited.
  The incident keeps its sha256, so what a deleted file was stays provable.

Frames come from the ``frames`` topic (a few per camera are kept, by id); packets from cameras
that offer :class:`~campusguard.sdk.video.PacketSource`. Drawing, encoding, remuxing, hashing
and deleting all run in worker threads; nothing here blocks the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from campusguard.sdk import (
    FRAMES,
    Bus,
    CameraSourceConfig,
    Frame,
    Incident,
    IncidentChange,
    Stage,
    Subscription,
    cancel_and_wait,
)
from campusguard.sdk.video import PacketSource

from ..config.model import EvidenceSettings
from .clip import ClipWritten, write_clip
from .files import Expired, WrittenFile, evidence_path, expired, remove_empty_days
from .snapshot import SnapshotRequest, write_snapshot

log = logging.getLogger("campusguard.evidence")

AUDIT_ACTOR = "evidence"


class EvidenceStore(Protocol):
    async def get_incident(self, incident_id: str) -> Incident | None: ...

    async def audit(self, actor: str, action: str, subject: str, detail: dict[str, Any] | None = None) -> None: ...


class EvidenceCore(Protocol):
    """What the recorder needs of the core."""

    @property
    def bus(self) -> Bus: ...

    @property
    def data_dir(self) -> Path: ...

    @property
    def store(self) -> EvidenceStore: ...

    def camera(self, camera_id: str) -> CameraSourceConfig | None: ...

    def loaded(self, table: str) -> dict[str, Any]: ...

    async def update_incident(self, incident: Incident, *, actor: str | None = None) -> Incident: ...


class EvidenceRecorder:
    snapshot_timeout = 0.5  # seconds attach_snapshot may hold up an incident
    frames_kept = 6  # frames per camera kept for snapshots (the incident's frame is usually among them)
    clip_delay = 0.5  # seconds after the clip window closes before it is cut (the decoder is a little behind)
    ring_margin = 3.0  # seconds a camera buffers beyond pre_seconds + post_seconds
    sweep_interval = 3600.0
    stop_timeout = 10.0  # seconds stop() waits for pending clips (cut early, with what there is)
    clock_agreement = 2.0  # a stamp's monotonic time is trusted when its wall time agrees within this

    def __init__(self, core: EvidenceCore, settings: EvidenceSettings) -> None:
        self.core = core
        self.settings = settings
        self._frames: dict[str, OrderedDict[str, Frame]] = {}
        self._retaining: set[str] = set()
        self._subscription: Subscription | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._late: dict[str, asyncio.Future[WrittenFile]] = {}  # snapshots that overran snapshot_timeout
        self._sweeper: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._started = False
        self._snapshot_threads: ThreadPoolExecutor | None = None
        self._clip_thread: ThreadPoolExecutor | None = None
        self.clips_written = 0
        self.snapshots_written = 0
        self.last_clip: ClipWritten | None = None

    @property
    def active(self) -> bool:
        return self._started and self.settings.enabled

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        settings = self.settings
        self._stopping.clear()
        self._started = True
        if settings.enabled and (settings.snapshot or settings.clip):
            self._snapshot_threads = ThreadPoolExecutor(max_workers=2, thread_name_prefix="evidence-snapshot")
            # One thread: clips share the cameras' packets, which muxing rewrites (see .clip).
            self._clip_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evidence-clip")
            self._subscription = self.core.bus.subscribe(FRAMES, self._on_frame, name="evidence", maxsize=64)
            if settings.clip:
                for camera_id in self.core.loaded("cameras"):
                    self._retain(camera_id)
        if settings.retention_days > 0:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="evidence-retention")

    async def stop(self) -> None:
        """Cut pending clips now (with what is buffered), then let go of everything."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=self.stop_timeout)
            for task in pending:
                log.error("evidence for incident %s not finished within %g s; abandoned", task.get_name(),
                          self.stop_timeout)  # fmt: skip
                task.cancel()
        await cancel_and_wait(self._sweeper)
        self._sweeper = None
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None
        for executor in (self._snapshot_threads, self._clip_thread):
            if executor is not None:
                executor.shutdown(wait=False, cancel_futures=True)
        self._snapshot_threads = self._clip_thread = None
        self._frames.clear()
        self._late.clear()

    # -- frames ----------------------------------------------------------------------------------

    async def _on_frame(self, frame: Frame) -> None:
        camera_id = frame.camera_id
        if self.settings.snapshot and frame.image is not None:
            kept = self._frames.setdefault(camera_id, OrderedDict())
            kept[frame.id] = frame
            while len(kept) > self.frames_kept:
                kept.popitem(last=False)
        if self.settings.clip and camera_id not in self._retaining:
            self._retain(camera_id)

    def _retain(self, camera_id: str) -> None:
        """Ask the camera to keep enough of its stream for a clip (once it is running)."""
        source = self.core.loaded("cameras").get(camera_id)
        if source is None:
            return
        self._retaining.add(camera_id)
        if isinstance(source, PacketSource):
            seconds = self.settings.pre_seconds + self.settings.post_seconds + self.ring_margin
            source.retain_packets(seconds, int(self.settings.buffer_mb * 1024 * 1024))
        else:
            log.info("camera %r does not buffer its stream (no PacketSource): incidents on it get no clip", camera_id)

    def frame_for(self, incident: Incident) -> Frame | None:
        """The frame the incident came from if it is still kept, else the camera's latest."""
        camera_id = incident.evidence.camera_id or incident.camera_id
        kept = self._frames.get(camera_id) if camera_id else None
        if not kept:
            return None
        frame_id = incident.evidence.frame_id
        if frame_id is not None and frame_id in kept:
            return kept[frame_id]
        return next(reversed(kept.values()))

    # -- snapshot --------------------------------------------------------------------------------

    async def attach_snapshot(self, incident: Incident) -> None:
        """Write the snapshot and set ``snapshot_path``/``snapshot_sha256``. Never raises (but cancellation)."""
        if not (self.active and self.settings.snapshot) or self._snapshot_threads is None:
            return
        try:
            frame = self.frame_for(incident)
            if frame is None:
                return
            evidence = incident.evidence
            request = SnapshotRequest(str(incident.kind), incident.confidence, tuple(evidence.boxes),
                                      tuple(evidence.scores))  # fmt: skip
            camera = self.core.camera(frame.camera_id) or CameraSourceConfig()
            path = evidence_path(self.core.data_dir, incident.id, incident.created_at, ".jpg")
            future = self._snapshot_threads.submit(write_snapshot, frame, request, camera, path)
            waiter = asyncio.wrap_future(future)
            waiter.add_done_callback(_retrieve)
            try:
                written = await asyncio.wait_for(asyncio.shield(waiter), self.snapshot_timeout)
            except TimeoutError:
                log.warning("snapshot of incident %s took over %g s: it follows with the clip", incident.id,
                            self.snapshot_timeout)  # fmt: skip
                self._late[incident.id] = waiter
                return
            _set_snapshot(incident, written)
            self.snapshots_written += 1
        except Exception:
            log.exception("snapshot of incident %s failed; the incident goes on without it", incident.id)

    # -- clip ------------------------------------------------------------------------------------

    def schedule_clip(self, incident: Incident) -> None:
        """After ``post_seconds``: write the clip and store it (with a late snapshot) as a new version."""
        if not self.active:
            return
        try:
            late = self._late.pop(incident.id, None)
            camera_id = incident.evidence.camera_id or incident.camera_id
            if late is None and not (self.settings.clip and camera_id):
                return
            anchor = self.anchor(incident)
            task = asyncio.create_task(self._finish(incident, anchor, late), name=f"evidence:{incident.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        except Exception:
            log.exception("evidence clip of incident %s could not be scheduled", incident.id)

    def anchor(self, incident: Incident) -> float:
        """The incident's moment on this host's monotonic clock (its frame's capture, else when it was raised)."""
        now, wall = time.monotonic(), time.time()
        stamp = incident.stages.get(str(Stage.CAPTURED)) or incident.stages.get(str(Stage.RAISED))
        if stamp is None:
            return now
        by_wall = now - (wall - stamp.wall.timestamp())
        # Another host's monotonic clock means nothing here: trust it only when its wall clock agrees.
        at = stamp.monotonic if abs(stamp.monotonic - by_wall) < self.clock_agreement else by_wall
        return min(at, now)

    async def _finish(self, incident: Incident, anchor: float, late: asyncio.Future[WrittenFile] | None) -> None:
        try:
            known = (incident.evidence.snapshot_path, incident.evidence.snapshot_sha256)
            clip = None
            camera_id = incident.evidence.camera_id or incident.camera_id
            if self.settings.clip and camera_id:
                delay = anchor + self.settings.post_seconds + self.clip_delay - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), delay)
                clip = await self._write_clip(incident, camera_id, anchor)
            snapshot = None
            if late is not None:
                try:
                    snapshot = await asyncio.wait_for(late, self.stop_timeout)
                    self.snapshots_written += 1
                except Exception:
                    log.exception("late snapshot of incident %s failed", incident.id)
            if clip is not None or snapshot is not None:
                await self._store(incident, clip, snapshot, known)
        except Exception:
            log.exception("evidence of incident %s failed; the incident keeps what it has", incident.id)

    async def _write_clip(self, incident: Incident, camera_id: str, anchor: float) -> ClipWritten | None:
        source = self.core.loaded("cameras").get(camera_id)
        if not isinstance(source, PacketSource) or self._clip_thread is None:
            return None
        start, end = anchor - self.settings.pre_seconds, anchor + self.settings.post_seconds
        path = evidence_path(self.core.data_dir, incident.id, incident.created_at, ".mp4")
        loop = asyncio.get_running_loop()
        clip = await loop.run_in_executor(self._clip_thread, _cut, source, start, end, path)
        if clip is None:
            log.warning("no video buffered on camera %r around incident %s: no clip", camera_id, incident.id)
            return None
        self.clips_written += 1
        self.last_clip = clip
        log.info(
            "evidence clip of incident %s: %.1f s, %d packets, %.1f MB, written in %.1f ms", incident.id,
            clip.seconds, clip.packets, clip.file.size / 1e6, clip.write_seconds * 1000,
        )  # fmt: skip
        return clip

    async def _store(
        self, incident: Incident, clip: ClipWritten | None, snapshot: WrittenFile | None, known: tuple[Any, Any]
    ) -> None:
        latest = await self.core.store.get_incident(incident.id)
        version = (latest or incident).model_copy(deep=True)
        fields: dict[str, str] = {}
        if snapshot is not None:
            fields |= {"snapshot_path": str(snapshot.path), "snapshot_sha256": snapshot.sha256}
        elif known[0] is not None and version.evidence.snapshot_path is None:
            fields |= {"snapshot_path": known[0], "snapshot_sha256": known[1]}  # a later version dropped it
        if clip is not None:
            fields |= {"clip_path": str(clip.file.path), "clip_sha256": clip.file.sha256}
        for evidence in (version.evidence, incident.evidence):  # later versions held in memory keep them too
            for key, value in fields.items():
                setattr(evidence, key, value)
        version.change = IncidentChange.EVIDENCE
        await self.core.update_incident(version, actor="evidence")

    # -- retention -------------------------------------------------------------------------------

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:
                log.exception("evidence retention sweep failed; next try in %g s", self.sweep_interval)
            await asyncio.sleep(self.sweep_interval)

    async def sweep(self, now: float | None = None) -> list[Expired]:
        """Delete evidence files older than ``retention_days``; audit each deletion."""
        days = self.settings.retention_days
        if days <= 0:
            return []
        removed = await asyncio.to_thread(_delete_expired, self.core.data_dir, days, now)
        for item in removed:
            await self.core.store.audit(
                AUDIT_ACTOR, "evidence.deleted", item.incident_id,
                {"file": str(item.path), "bytes": item.size, "age_days": round(item.age_days, 2),
                 "retention_days": days},
            )  # fmt: skip
        if removed:
            log.info("evidence retention: %d files older than %g days deleted", len(removed), days)
        return removed


def _retrieve(future: asyncio.Future[Any]) -> None:
    """A snapshot nobody waits for any more may still fail: its error is logged where it is awaited, or not at all."""
    if not future.cancelled():
        future.exception()


def _set_snapshot(incident: Incident, written: WrittenFile) -> None:
    incident.evidence.snapshot_path = str(written.path)
    incident.evidence.snapshot_sha256 = written.sha256


def _cut(source: PacketSource, start: float, end: float, path: Path) -> ClipWritten | None:
    """In the clip thread: take the camera's packets and remux them."""
    snapshot = source.recent_packets(start)
    if snapshot is None or not snapshot.packets:
        return None
    return write_clip(snapshot, start, end, path)


def _delete_expired(data_dir: Path, days: float, now: float | None) -> list[Expired]:
    removed: list[Expired] = []
    for path, item in expired(data_dir, days, now):
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.error("evidence retention: cannot delete %s: %s", path, exc)
            continue
        removed.append(item)
    remove_empty_days(data_dir)
    return removed
