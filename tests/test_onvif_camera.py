"""A camera configured with only its ONVIF address and credentials: found, streamed, reported.

Peers: ipycam (a real ONVIF device) whose advertised stream URIs are served by gst-rtsp-server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from peers.process import PeerProcess, ipycam_argv
from peers.rtsp import RtspServer, free_port

from campusguard.sdk import FRAMES, Frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, RtspServer]]:
    streams = RtspServer(user="admin", password="secret", aliases=("/video_sub", "/video_main")).start()
    camera = PeerProcess(
        ipycam_argv("127.0.0.1", extra=["--rtsp-port", str(streams.port)]), cwd=tmp_path_factory.mktemp("ipycam")
    ).start()
    try:
        yield camera.port, streams
    finally:
        camera.stop()
        streams.stop()


CONFIG = """
[cameras.gym]
type = "onvif"
host = "127.0.0.1"
port = {port}
username = "admin"
password = "{password}"
events = false
timeout = 3

[cameras.hall]
type = "file"
path = "{sample}"
"""


async def test_onvif_camera_resolves_its_sub_stream_and_delivers_frames(
    campusguard_core, device: tuple[int, RtspServer], campusguard_no_lingering
) -> None:
    port, _ = device
    frames: list[Frame] = []

    async def keep(frame: Frame) -> None:
        frames.append(frame)

    from peers.rtsp import SAMPLE

    config = CONFIG.format(port=port, password="secret", sample=SAMPLE)
    async with campusguard_core(config, entry_points=True) as core:
        core.api.bus.subscribe(FRAMES, keep, name="test")
        for _ in range(500):
            if sum(f.camera_id == "gym" for f in frames) >= 5:
                break
            await asyncio.sleep(0.02)
        camera = core.component("cameras", "gym")
        assert core.state("cameras", "gym") == "loaded"
        media = camera.media  # type: ignore[attr-defined]
        assert (media.sub.width, media.sub.height, media.main.width) == (640, 360, 1920)
        assert camera.stats.codec == "h264"  # type: ignore[attr-defined]
    assert sum(f.camera_id == "gym" for f in frames) >= 5


async def test_wrong_onvif_password_fails_that_camera_only(
    campusguard_core, device: tuple[int, RtspServer], tmp_path: Path
) -> None:
    port, _ = device
    from peers.rtsp import SAMPLE

    config = CONFIG.format(port=port, password="wrong-one", sample=SAMPLE)
    async with campusguard_core(config, entry_points=True) as core:
        assert core.state("cameras", "gym") == "failed"
        error = core.error("cameras", "gym") or ""
        assert "camera 'gym': authentication failed" in error and "wrong-one" not in error
        assert core.state("cameras", "hall") == "loaded"


async def test_unreachable_onvif_camera_is_retried(campusguard_core) -> None:  # type: ignore[no-untyped-def]
    config = f"""
[core]
retry_initial = 0.1
retry_max = 0.2

[cameras.roof]
type = "onvif"
host = "127.0.0.1"
port = {free_port()}
username = "admin"
password = "x"
timeout = 1
"""
    async with campusguard_core(config, entry_points=True) as core:
        await asyncio.sleep(0.5)
        assert core.state("cameras", "roof") == "setup_retry"
        assert "roof" in (core.error("cameras", "roof") or "")
