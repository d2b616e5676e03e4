"""Evidence: the packet ring, clips remuxed without re-encoding, snapshots, the recorder in a core, retention."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import subprocess
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import cv2
import numpy as np
import pytest
from peers.footage import PEDESTRIANS
from peers.rtsp import RtspServer

from campusguard.core.evidence import SnapshotRequest, evidence_path, render, write_clip, write_snapshot
from campusguard.core.evidence import recorder as recorder_module
from campusguard.plugins.cameras.file import FileCamera
from campusguard.plugins.cameras.rtsp import RtspCamera
from campusguard.sdk import (
    FRAMES,
    OBSERVATIONS,
    Box,
    CameraSource,
    CameraSourceConfig,
    ComponentContext,
    Evidence,
    Frame,
    Incident,
    Registry,
    hookimpl,
)
from campusguard.sdk.testing import RecordingNotifier, RecordingPlugin, make_observation
from campusguard.sdk.video import PacketRing, PacketSnapshot, PacketSource

FPS = 10  # the footage's frame rate
GOP = 10  # keyframe interval of the re-encoded footage (1 s)
LAG = 0.2  # both files have two B-frames: a keyframe shown at t is decoded at t - 0.2


# -- footage -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def short_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real footage re-encoded with a keyframe every second and B-frames (the original has a
    25 s GOP, unlike a camera)."""
    path = tmp_path_factory.mktemp("footage") / "pedestrians_gop10.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(PEDESTRIANS), "-c:v", "libx264", "-preset", "ultrafast",
         "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0", "-bf", "2", str(path)],
        check=True,
    )  # fmt: skip
    return path


def fill_ring(path: Path, seconds: float, max_bytes: int = 64 << 20, *, until: float | None = None) -> PacketRing:
    """Demux and decode ``path`` like the decoder thread does, stamping each packet with its decoding time
    (in stream seconds: arrival order, like the demux time a live decoder stamps)."""
    ring = PacketRing(seconds, max_bytes)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ring.open_session(stream)
        for packet in container.demux(stream):
            packet.decode()
            if packet.dts is None:
                continue
            at = float(packet.dts * packet.time_base)
            if until is not None and at > until:
                break
            ring.add(packet, at)
        ring.close_session()
    return ring


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def ffprobe_ok(path: Path) -> None:
    result = subprocess.run(["ffprobe", "-v", "error", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
    full = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True)
    assert full.returncode == 0 and not full.stderr.strip(), full.stderr


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def is_file(path: str | Path | None) -> bool:
    return path is not None and Path(path).is_file()


def first_image() -> np.ndarray:
    with av.open(str(PEDESTRIANS)) as container:
        frame = next(container.decode(video=0))
        return np.ascontiguousarray(frame.to_ndarray(format="bgr24"))


# -- the ring ------------------------------------------------------------------------------------


def test_ring_starts_at_a_keyframe_and_keeps_its_seconds(short_gop: Path) -> None:
    ring = fill_ring(short_gop, seconds=3.0)
    snapshot = ring.snapshot(0.0)
    assert snapshot is not None
    packets = snapshot.packets
    assert packets[0].keyframe
    span = packets[-1].at - packets[0].at
    # At least 3 s, and never a whole GOP more than needed.
    assert 3.0 <= span < 3.0 + GOP / FPS + 0.2
    assert [p.dts for p in packets] == sorted(p.dts for p in packets)
    assert ring.bytes == sum(p.size for p in packets) == snapshot.size
    # Asked for a moment inside the ring: it starts at the keyframe before that moment.
    later = ring.snapshot(28.5)
    assert later is not None and later.packets[0].keyframe and later.packets[0].at == pytest.approx(28.0 - LAG)


def test_ring_respects_its_byte_bound(short_gop: Path) -> None:
    whole = fill_ring(short_gop, seconds=100.0)
    bound = whole.bytes // 6
    ring = fill_ring(short_gop, seconds=100.0, max_bytes=bound)
    assert 0 < ring.bytes <= bound and ring.dropped_bytes > 0
    snapshot = ring.snapshot(0.0)
    assert snapshot is not None and snapshot.packets[0].keyframe
    assert snapshot.packets[-1].at == whole.snapshot(0.0).packets[-1].at  # type: ignore[union-attr]


def test_ring_with_the_original_long_gop() -> None:
    # One keyframe at 0 and one at 25 s: the ring keeps the whole GOP rather than start elsewhere.
    ring = fill_ring(PEDESTRIANS, seconds=3.0, until=20.0)
    snapshot = ring.snapshot(19.0)
    assert snapshot is not None and snapshot.packets[0].at == -LAG and snapshot.packets[0].keyframe
    ring = fill_ring(PEDESTRIANS, seconds=3.0)
    assert ring.snapshot(0.0).packets[0].at == pytest.approx(25.0 - LAG)  # type: ignore[union-attr]
    # A GOP larger than the byte bound is dropped whole; buffering restarts at the next keyframe.
    tight = fill_ring(PEDESTRIANS, seconds=3.0, max_bytes=300_000, until=24.7)
    assert len(tight) == 0 and tight.snapshot(0.0) is None
    tight = fill_ring(PEDESTRIANS, seconds=3.0, max_bytes=300_000)
    assert tight.snapshot(0.0).packets[0].at == pytest.approx(25.0 - LAG)  # type: ignore[union-attr]


def test_ring_off_untimed_packets_and_sessions(short_gop: Path) -> None:
    off = fill_ring(short_gop, seconds=0.0)
    assert len(off) == 0 and off.snapshot(0.0) is None
    ring = PacketRing(5.0)
    ring.open_session(SimpleNamespace(time_base=None))
    ring.add(SimpleNamespace(pts=None, dts=None, size=100, is_keyframe=True), 1.0)  # untimed (RTSP start)
    ring.add(SimpleNamespace(pts=1, dts=1, size=0, is_keyframe=True), 1.0)  # the empty packet demux ends with
    ring.add(SimpleNamespace(pts=2, dts=2, size=10, is_keyframe=False), 1.0)  # no keyframe yet
    assert len(ring) == 0
    ring.add(SimpleNamespace(pts=3, dts=3, size=10, is_keyframe=True), 1.1)
    assert len(ring) == 1
    ring.retain(0.0)
    assert len(ring) == 0 and ring.bytes == 0


async def test_file_camera_buffers_packets_while_it_decodes(short_gop: Path) -> None:
    context = ComponentContext(name="yard", logger=logging.getLogger("test"), core=None, data_dir=Path("."))  # type: ignore[arg-type]
    camera = FileCamera("yard", FileCamera.Config(path=short_gop, realtime=True, loop=False), context)
    assert isinstance(camera, PacketSource)
    assert camera.recent_packets(0.0) is None  # not asked to buffer: nothing kept
    camera.retain_packets(1.0)
    await camera.start()
    try:
        await asyncio.sleep(2.6)
        now = time.monotonic()
        snapshot = camera.recent_packets(now - 0.5)
        assert snapshot is not None and snapshot.packets[0].keyframe
        assert snapshot.packets[0].at <= now - 0.5 and snapshot.end <= now
        everything = camera.recent_packets(0.0)
        assert everything is not None and everything.packets[0].keyframe
        assert everything.end - everything.start < 1.0 + GOP / FPS + 0.3  # trimmed to ~1 s + a GOP
        assert [p.at for p in everything.packets] == sorted(p.at for p in everything.packets)
    finally:
        await camera.stop()


async def test_rtsp_camera_buffers_a_live_stream_and_clips_it(tmp_path: Path) -> None:
    server = RtspServer(fps=15).start()  # live H.264, a keyframe a second, no B-frames
    context = ComponentContext(name="gate", logger=logging.getLogger("test"), core=None, data_dir=Path("."))  # type: ignore[arg-type]
    camera = RtspCamera("gate", RtspCamera.Config(url=server.url("live")), context)
    camera.retain_packets(2.0)
    try:
        await camera.start()
        await asyncio.sleep(3.5)
        now = time.monotonic()
        snapshot = camera.recent_packets(now - 2.0)
        assert snapshot is not None and snapshot.packets[0].keyframe
        assert all(p.pts is not None for p in snapshot.packets)
        clip = await asyncio.to_thread(write_clip, snapshot, now - 2.0, now, tmp_path / "live.mp4")
        assert clip is not None
        ffprobe_ok(clip.file.path)
        frames = decoded_frames(clip.file.path)
        assert frames == clip.packets and abs(frames - 2.0 * 15) <= 15 + 3
        assert clip.file.sha256 == sha256(clip.file.path)
    finally:
        await camera.stop()
        server.stop()


# -- clips ---------------------------------------------------------------------------------------


def test_clip_decodes_fully_and_hashes_right(short_gop: Path, tmp_path: Path) -> None:
    snapshot = fill_ring(short_gop, seconds=30.0).snapshot(0.0)
    assert snapshot is not None
    pre, post, anchor = 2.0, 2.0, 15.3
    clip = write_clip(snapshot, anchor - pre, anchor + post, tmp_path / "a.mp4")
    assert clip is not None and clip.file.path == tmp_path / "a.mp4"
    ffprobe_ok(clip.file.path)
    frames = decoded_frames(clip.file.path)
    assert abs(frames - (pre + post) * FPS) <= GOP
    assert clip.file.sha256 == sha256(clip.file.path) and clip.file.size == clip.file.path.stat().st_size
    assert clip.starts_at == pytest.approx(13.0 - LAG)  # the keyframe before the window
    assert not list(tmp_path.glob(".*part"))
    with av.open(str(clip.file.path)) as container:
        assert container.format.name.startswith("mov,mp4")
        assert container.streams.video[0].codec_context.name == "h264"
    # faststart: the index comes before the media data.
    head = clip.file.path.read_bytes()[:4096]
    assert head.find(b"moov") != -1 and (head.find(b"mdat") == -1 or head.find(b"moov") < head.find(b"mdat"))


def test_overlapping_clips_are_both_valid(short_gop: Path, tmp_path: Path) -> None:
    snapshot = fill_ring(short_gop, seconds=30.0).snapshot(0.0)
    assert snapshot is not None
    first = write_clip(snapshot, 10.0, 16.0, tmp_path / "first.mp4")
    second = write_clip(snapshot, 13.0, 19.0, tmp_path / "second.mp4")
    again = write_clip(snapshot, 10.0, 16.0, tmp_path / "again.mp4")
    assert first is not None and second is not None and again is not None
    for clip in (first, second):
        ffprobe_ok(clip.file.path)
        assert abs(decoded_frames(clip.file.path) - 6.0 * FPS) <= GOP
    # Muxing rewrote the shared packets; restoring them makes the same clip byte for byte again.
    assert again.file.sha256 == first.file.sha256
    assert [p.packet.pts for p in snapshot.packets] == [p.pts for p in snapshot.packets]


def test_clip_of_a_long_gop_starts_at_its_keyframe(tmp_path: Path) -> None:
    snapshot = fill_ring(PEDESTRIANS, seconds=3.0).snapshot(0.0)
    assert snapshot is not None
    clip = write_clip(snapshot, 27.0, 29.0, tmp_path / "long.mp4")
    assert clip is not None and clip.starts_at == pytest.approx(25.0 - LAG)
    ffprobe_ok(clip.file.path)
    # From the keyframe (decoded at 24.8) through what was decoded by 29.0: every packet is a frame.
    assert decoded_frames(clip.file.path) == clip.packets == round((29.0 - (25.0 - LAG)) * FPS) + 1
    assert write_clip(PacketSnapshot(snapshot.template, snapshot.time_base, ()), 0, 1, tmp_path / "none.mp4") is None


def test_evidence_paths_stay_in_their_folder(tmp_path: Path) -> None:
    when = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    day = when.astimezone().strftime("%Y-%m-%d")
    assert evidence_path(tmp_path, "a1b2", when, ".jpg") == tmp_path / "evidence" / day / "a1b2.jpg"
    hostile = evidence_path(tmp_path, "../../etc/passwd", when, ".mp4")
    assert hostile.parent == tmp_path / "evidence" / day and ".." not in hostile.name


# -- snapshots -----------------------------------------------------------------------------------


def test_snapshot_is_a_jpeg_with_the_boxes_drawn(tmp_path: Path) -> None:
    image = first_image()
    frame = Frame(camera_id="yard", sequence=0, width=image.shape[1], height=image.shape[0], image=image)
    box = Box(x1=100, y1=80, x2=300, y2=400)
    request = SnapshotRequest("intrusion", 0.9, (box,), (0.8,))
    written = write_snapshot(frame, request, CameraSourceConfig(), tmp_path / "s.jpg")
    data = written.path.read_bytes()
    assert data[:3] == b"\xff\xd8\xff" and written.sha256 == hashlib.sha256(data).hexdigest()
    drawn = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR).astype(int)
    assert drawn.shape == image.shape
    plain = cv2.imdecode(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1], cv2.IMREAD_COLOR).astype(int)
    outline = np.zeros(image.shape[:2], bool)
    outline[80:401, [100, 300]] = True
    outline[[80, 400], 100:301] = True
    inside = np.zeros(image.shape[:2], bool)
    inside[90:390, 110:290] = True
    diff = np.abs(drawn - plain).sum(axis=2)
    assert diff[outline].mean() > 60 > 5 > diff[inside].mean()
    # Green boxes: on the outline green dominates where the plain frame is grey.
    assert (drawn[outline][:, 1] - drawn[outline][:, 2]).mean() > 60
    assert render(frame, SnapshotRequest("intrusion", 0.9), CameraSourceConfig())[:2] == b"\xff\xd8"


# -- the recorder in a core ----------------------------------------------------------------------


class StillCamera(CameraSource):
    """Frames of the real footage's first picture, ten a second; no packets (not a PacketSource)."""

    kind = "still"

    class Config(CameraSourceConfig):
        images: bool = True

    async def frames(self) -> AsyncIterator[Frame]:  # type: ignore[override]
        assert isinstance(self.config, StillCamera.Config)
        image = first_image()
        sequence = 0
        while True:
            if self.config.images:
                yield Frame(camera_id=self.name, sequence=sequence, width=image.shape[1], height=image.shape[0],
                            image=image.copy())  # fmt: skip
                sequence += 1
            await asyncio.sleep(0.1)


class CamerasPlugin:
    @hookimpl
    def campusguard_register_camera_sources(self, registry: Registry[CameraSource]) -> None:
        registry.add(FileCamera)
        registry.add(StillCamera)


PLUGINS = {"recorder": RecordingPlugin(), "cameras": CamerasPlugin()}


@pytest.fixture(autouse=True)
def _clear_recorder() -> None:
    RecordingNotifier.received.clear()


async def wait_for(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def stored(core: Any, incident_id: str) -> Incident:
    incident = await core.api.store.get_incident(incident_id)
    assert incident is not None
    return incident  # type: ignore[no-any-return]


async def test_end_to_end_rule_incident_gets_snapshot_and_clip(
    campusguard_core: Any, short_gop: Path, campusguard_no_lingering: None
) -> None:
    config = f"""
[evidence]
pre_seconds = 1.0
post_seconds = 1.0

[cameras.yard]
type = "file"
path = "{short_gop}"
tamper.enabled = false

[notifiers.office]
type = "recorder"

[[rules]]
name = "yard-intrusion"
when = {{ kinds = ["intrusion_candidate"] }}
incident = {{ kind = "intrusion", severity = "severe" }}
dedupe_seconds = 0
"""
    frames: list[Frame] = []

    async def keep(frame: Frame) -> None:
        frames.append(frame)

    async with campusguard_core(config, plugins=PLUGINS) as core:
        core.api.bus.subscribe(FRAMES, keep, name="test")
        await asyncio.sleep(2.2)  # more than a second of video before the incident
        frame = frames[-1]
        box = Box(x1=200, y1=100, x2=330, y2=380)
        observation = make_observation(
            kind="intrusion_candidate", camera_id="yard", zone=None, captured=frame.captured,
            evidence=Evidence(frame_id=frame.id, camera_id="yard", boxes=[box], scores=[0.9], track_ids=[3]),
        )  # fmt: skip
        core.api.bus.publish(OBSERVATIONS, observation)
        await core.api.rules.drain()
        await core.wait_delivered("office", 1)
        (delivered,) = RecordingNotifier.received
        # The first delivery already carries the snapshot, of the incident's very frame.
        snapshot_path = Path(delivered.evidence.snapshot_path or "")
        assert is_file(snapshot_path) and delivered.evidence.snapshot_sha256 == sha256(snapshot_path)
        assert delivered.evidence.clip_path is None
        day = delivered.created_at.astimezone().strftime("%Y-%m-%d")
        assert snapshot_path == core.api.data_dir / "evidence" / day / f"{delivered.id}.jpg"
        drawn = cv2.imread(str(snapshot_path)).astype(int)
        assert np.abs(drawn[100, 200:331] - frame.image[100, 200:331].astype(int)).sum(axis=1).mean() > 60

        async def clip_stored() -> bool:
            return (await stored(core, delivered.id)).evidence.clip_path is not None

        await wait_for(clip_stored)
        incident = await stored(core, delivered.id)
        clip_path = Path(incident.evidence.clip_path or "")
        assert clip_path == snapshot_path.with_suffix(".mp4") and incident.evidence.clip_sha256 == sha256(clip_path)
        assert incident.evidence.snapshot_path == str(snapshot_path)
        assert incident.change == "evidence" and incident.revision == 0
        ffprobe_ok(clip_path)
        assert abs(decoded_frames(clip_path) - 2.0 * FPS) <= GOP
        await asyncio.sleep(0.2)
        assert len(RecordingNotifier.received) == 1  # the clip is stored, not delivered again
        counts = await core.api.store.delivery_counts()
        assert counts["office"] == {"delivered": 1}
        assert core.api.evidence.last_clip.write_seconds < 0.5


async def test_camera_without_packets_or_frames_still_raises(campusguard_core: Any) -> None:
    config = """
[evidence]
pre_seconds = 0.5
post_seconds = 0.5

[cameras.still]
type = "still"
tamper.enabled = false
stall_timeout = 600

[cameras.dark]
type = "still"
images = false
stall_timeout = 600
"""
    async with campusguard_core(config, plugins=PLUGINS) as core:
        await asyncio.sleep(0.4)
        still = await core.api.raise_incident(Incident(kind="panic", camera_id="still"))
        dark = await core.api.raise_incident(Incident(kind="panic", camera_id="dark"))
        nowhere = await core.api.raise_incident(Incident(kind="door_forced"))
        await asyncio.sleep(1.3)
        still, dark, nowhere = [await stored(core, i.id) for i in (still, dark, nowhere)]
        assert is_file(still.evidence.snapshot_path)
        assert still.evidence.clip_path is None and still.change == "raised"
        for incident in (dark, nowhere):
            assert incident.evidence.snapshot_path is None and incident.evidence.clip_path is None


async def test_snapshot_failure_or_delay_never_fails_the_incident(
    campusguard_core: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = """
[evidence]
clip = false

[cameras.still]
type = "still"
tamper.enabled = false
stall_timeout = 600
"""
    real = recorder_module.write_snapshot

    def broken(*args: Any) -> Any:
        raise OSError("disk full")

    def slow(*args: Any) -> Any:
        time.sleep(1.0)
        return real(*args)

    async with campusguard_core(config, plugins=PLUGINS) as core:
        await asyncio.sleep(0.4)
        monkeypatch.setattr(recorder_module, "write_snapshot", broken)
        failed = await core.api.raise_incident(Incident(kind="panic", camera_id="still"))
        assert (await stored(core, failed.id)).evidence.snapshot_path is None
        monkeypatch.setattr(recorder_module, "write_snapshot", slow)
        began = time.monotonic()
        late = await core.api.raise_incident(Incident(kind="panic", camera_id="still"))
        assert time.monotonic() - began < 0.9  # bounded: the incident did not wait for the slow disk
        assert (await stored(core, late.id)).evidence.snapshot_path is None

        async def followed() -> bool:
            return (await stored(core, late.id)).evidence.snapshot_path is not None

        await wait_for(followed)  # the late snapshot follows as an evidence version
        incident = await stored(core, late.id)
        assert incident.change == "evidence" and incident.revision == 0
        assert incident.evidence.snapshot_sha256 == sha256(Path(incident.evidence.snapshot_path or ""))


async def test_evidence_disabled_writes_nothing(campusguard_core: Any) -> None:
    config = """
[evidence]
enabled = false

[cameras.still]
type = "still"
tamper.enabled = false
stall_timeout = 600
"""
    async with campusguard_core(config, plugins=PLUGINS) as core:
        await asyncio.sleep(0.4)
        incident = await core.api.raise_incident(Incident(kind="panic", camera_id="still"))
        await asyncio.sleep(0.3)
        incident = await stored(core, incident.id)
        assert incident.evidence.snapshot_path is None and incident.evidence.clip_path is None
        assert not (core.api.data_dir / "evidence").exists()


async def test_retention_deletes_old_files_and_audits_each(campusguard_core: Any, tmp_path: Path) -> None:
    root = tmp_path / "campusguard" / "evidence"
    now = time.time()

    def make(relative: str, age_days: float) -> Path:
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"evidence")
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
        return path

    old = [make("2020-01-01/aaa.jpg", 40), make("2020-01-01/aaa.mp4", 40), make("2020-01-02/bbb.jpg", 31)]
    young = [make("2020-01-03/ccc.jpg", 29), make("2020-01-03/ccc.mp4", 1)]
    async with campusguard_core("[evidence]\nretention_days = 30\n") as core:

        async def deletions() -> list[Any]:
            return [e for e in await core.api.store.audit_entries() if e.action == "evidence.deleted"]

        async def swept() -> bool:
            return len(await deletions()) >= 3

        await wait_for(swept)  # the sweep at start: files deleted, then each deletion audited
        assert not any(p.exists() for p in old) and all(p.exists() for p in young)
        assert not (root / "2020-01-01").exists() and (root / "2020-01-03").is_dir()
        entries = await deletions()
        assert sorted((e.subject, e.detail["file"]) for e in entries) == [
            ("aaa", "2020-01-01/aaa.jpg"), ("aaa", "2020-01-01/aaa.mp4"), ("bbb", "2020-01-02/bbb.jpg")
        ]  # fmt: skip
        assert all(e.actor == "evidence" and e.detail["age_days"] > 30 for e in entries)
        # The hourly sweep, a month and a day later: the rest goes too.
        removed = await core.api.evidence.sweep(now=now + 31 * 86400)
        assert sorted(str(r.path) for r in removed) == ["2020-01-03/ccc.jpg", "2020-01-03/ccc.mp4"]
        assert not any(p.exists() for p in young)
        assert len(await deletions()) == 5
