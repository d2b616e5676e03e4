"""RTSP ingestion against a real gst-rtsp-server: outages, credentials, bad addresses."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest
from peers.rtsp import SAMPLE, RtspServer, free_port

from campusguard.sdk import CAMERA_AVAILABILITY, CAMERA_EVENTS, FRAMES, CameraEvent, Frame
from campusguard.sdk.testing import RecordingNotifier, RecordingPlugin

pytestmark = pytest.mark.slow


class FrameLog:
    """Arrival times of frames per camera, from the bus."""

    def __init__(self) -> None:
        self.times: defaultdict[str, list[float]] = defaultdict(list)

    async def __call__(self, frame: Frame) -> None:
        self.times[frame.camera_id].append(time.monotonic())

    def count(self, camera: str) -> int:
        return len(self.times[camera])

    def since(self, camera: str, t: float) -> int:
        return sum(1 for x in self.times[camera] if x >= t)


@pytest.fixture
def server() -> Iterator[RtspServer]:
    s = RtspServer().start()
    yield s
    s.stop()


async def wait_until(predicate, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


def kinds(camera: str) -> list[str]:
    """The kinds of the incidents raised on ``camera``, in order (later revisions are changes, not new ones)."""
    return [str(i.kind) for i in RecordingNotifier.received if i.camera_id == camera and i.revision == 0]


def resolved(camera: str, kind: str) -> int:
    return sum(
        1 for i in RecordingNotifier.received if i.camera_id == camera and i.kind == kind and i.change == "resolved"
    )


PLUGINS = {"recorder": RecordingPlugin()}


async def test_three_outages_give_one_offline_and_one_online_each(
    campusguard_core, server: RtspServer, campusguard_no_lingering
) -> None:
    RecordingNotifier.received.clear()
    config = f"""
[cameras.gate]
type = "rtsp"
url = "{server.url("live")}"
stall_timeout = 1.5
reconnect_initial = 0.2
reconnect_max = 1.0
tamper.enabled = false

[cameras.yard]
type = "file"
path = "{SAMPLE}"
tamper.enabled = false

[notifiers.recorder]
"""
    frames = FrameLog()
    async with campusguard_core(config, plugins=PLUGINS, entry_points=True) as core:
        core.api.bus.subscribe(FRAMES, frames, name="test")
        availability: list[tuple[str, bool | None]] = []

        async def on_camera_event(event: CameraEvent) -> None:
            if event.topic == CAMERA_AVAILABILITY:
                availability.append((event.camera_id, event.active))

        core.api.bus.subscribe(CAMERA_EVENTS, on_camera_event, name="test-availability")
        await wait_until(lambda: frames.count("gate") >= 5, 10, "first frames from the RTSP camera")
        resume_times = []
        for outage in range(3):
            server.kill()
            killed = time.monotonic()
            await wait_until(lambda n=outage: kinds("gate").count("camera_offline") == n + 1, 10, "camera_offline")
            yard_during = frames.since("yard", killed)
            server.start()
            returned = time.monotonic()
            resume_times.append(await wait_until(lambda t=returned: frames.since("gate", t) >= 1, 5, "frames resume"))
            await wait_until(lambda n=outage: kinds("gate").count("camera_online") == n + 1, 5, "camera_online")
            assert yard_during >= 3, "the other camera was disturbed by the outage"
            await asyncio.sleep(0.5)
        await core.wait_delivered("recorder", 9)  # 3 offline, each resolved when frames returned, 3 online
        assert core.state("cameras", "gate") == "loaded"
        assert core.component("cameras", "gate").stats.reconnects >= 3  # type: ignore[attr-defined]
    assert kinds("gate") == ["camera_offline", "camera_online"] * 3
    assert resolved("gate", "camera_offline") == 3  # closed when the camera came back: nothing left open
    assert availability == [("gate", False), ("gate", True)] * 3  # dashboards (MQTT) follow the bus
    assert kinds("yard") == []
    assert max(resume_times) < 5.0
    print("frames resumed after", [f"{t:.2f}s" for t in resume_times])


async def test_wrong_credentials_fail_that_camera_only(campusguard_core, campusguard_no_lingering) -> None:
    server = RtspServer(user="school", password="right").start()
    try:
        config = f"""
[cameras.office]
type = "rtsp"
url = "{server.url("live")}"
username = "school"
password = "wrong-password-123"

[cameras.hall]
type = "rtsp"
url = "{server.url("live")}"
username = "school"
password = "right"
"""
        frames = FrameLog()
        async with campusguard_core(config, entry_points=True) as core:
            core.api.bus.subscribe(FRAMES, frames, name="test")
            assert core.state("cameras", "office") == "failed"
            error = core.error("cameras", "office") or ""
            assert "authentication failed" in error and "'office'" in error
            assert "wrong-password-123" not in error
            await wait_until(lambda: frames.count("hall") >= 5, 10, "frames from the camera with good credentials")
            assert core.state("cameras", "hall") == "loaded"
    finally:
        server.stop()


async def test_unreachable_camera_is_reported_offline_and_keeps_retrying(
    campusguard_core, server: RtspServer, campusguard_no_lingering, caplog: pytest.LogCaptureFixture
) -> None:
    RecordingNotifier.received.clear()
    port = free_port()
    config = f"""
[cameras.roof]
type = "rtsp"
url = "rtsp://127.0.0.1:{port}/live"
username = "admin"
password = "s3cret-in-url"
stall_timeout = 1.0
reconnect_initial = 0.1
reconnect_max = 0.3

[cameras.gate]
type = "rtsp"
url = "{server.url("live")}"

[notifiers.recorder]
"""
    frames = FrameLog()
    async with campusguard_core(config, plugins=PLUGINS, entry_points=True) as core:
        core.api.bus.subscribe(FRAMES, frames, name="test")
        assert core.state("cameras", "roof") == "loaded"  # it may come up later: not a setup error
        await wait_until(lambda: "camera_offline" in kinds("roof"), 5, "camera_offline for the dead address")
        stats = core.component("cameras", "roof").stats  # type: ignore[attr-defined]
        assert stats.reconnects >= 2 and "Connection refused" in (stats.last_error or "")
        await wait_until(lambda: frames.count("gate") >= 5, 10, "frames from the healthy camera")
    (offline,) = [i for i in RecordingNotifier.received if i.camera_id == "roof"]
    assert "Connection refused" in offline.title
    assert "s3cret-in-url" not in caplog.text + offline.title


async def test_address_that_is_not_a_stream_is_a_clear_setup_error(campusguard_core, tmp_path) -> None:  # type: ignore[no-untyped-def]
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("these are meeting notes, not video\n" * 100)
    config = f"""
[cameras.bogus]
type = "file"
path = "{not_video}"

[cameras.missing]
type = "file"
path = "{tmp_path / "nope.mp4"}"
"""
    async with campusguard_core(config, entry_points=True) as core:
        assert core.state("cameras", "bogus") == "setup_error"
        assert "camera 'bogus': not a video stream" in (core.error("cameras", "bogus") or "")
        assert core.state("cameras", "missing") == "setup_error"
        assert "video file" in (core.error("cameras", "missing") or "") and "not found" in (
            core.error("cameras", "missing") or ""
        )


def test_credentials_in_the_url_are_refused_by_config() -> None:
    from pydantic import ValidationError

    from campusguard.plugins.cameras.rtsp import RtspCamera

    with pytest.raises(ValidationError, match="put credentials in username/password"):
        RtspCamera.Config(url="rtsp://admin:pw@10.0.0.5/stream")
    with pytest.raises(ValidationError, match="must start with rtsp://"):
        RtspCamera.Config(url="http://10.0.0.5/stream")


async def test_udp_transport(campusguard_core, server: RtspServer, campusguard_no_lingering) -> None:
    config = f"""
[cameras.gate]
type = "rtsp"
url = "{server.url("live")}"
transport = "udp"
"""
    frames = FrameLog()
    async with campusguard_core(config, entry_points=True) as core:
        core.api.bus.subscribe(FRAMES, frames, name="test")
        await wait_until(lambda: frames.count("gate") >= 5, 10, "frames over UDP")
        assert core.component("cameras", "gate").stats.codec == "h264"  # type: ignore[attr-defined]
