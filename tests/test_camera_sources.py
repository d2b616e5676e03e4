"""File and HTTP-snapshot camera sources, and `campusguard probe-stream`, against real peers."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import cv2
import pytest
from peers.rtsp import SAMPLE, RtspServer

from campusguard.plugins.cameras.file import FileCamera
from campusguard.plugins.cameras.snapshot import SnapshotCamera
from campusguard.sdk import AuthFailed, ConfigError
from campusguard.sdk.testing import make_context
from campusguard.sdk.testing.conformance import CameraSourceConformance, ErrorMapping

CLI = str(Path(sys.executable).parent / "campusguard")


def sample_jpeg() -> bytes:
    with av.open(str(SAMPLE)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="bgr24")
    ok, encoded = cv2.imencode(".jpg", frame)
    assert ok
    return bytes(encoded)


class SnapshotPeer:
    """A camera's HTTP snapshot endpoint with basic auth; /page.html answers HTML."""

    def __init__(self) -> None:
        jpeg = sample_jpeg()
        expected = "Basic " + base64.b64encode(b"viewer:pw").decode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="cam"')
                    self.end_headers()
                    return
                body, kind = (jpeg, "image/jpeg") if self.path == "/snap.jpg" else (b"<html>login</html>", "text/html")
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def snapshot_peer() -> Iterator[SnapshotPeer]:
    peer = SnapshotPeer()
    yield peer
    peer.server.shutdown()
    peer.server.server_close()


class TestFileCamera(CameraSourceConformance):
    component_class = FileCamera

    def valid_config(self) -> dict[str, object]:
        return {"path": str(SAMPLE)}


class TestSnapshotCamera(CameraSourceConformance, ErrorMapping):
    component_class = SnapshotCamera
    base = ""

    @pytest.fixture(autouse=True)
    def _peer(self, snapshot_peer: SnapshotPeer) -> None:
        type(self).base = snapshot_peer.base

    def valid_config(self) -> dict[str, object]:
        return {"url": f"{self.base}/snap.jpg", "username": "viewer", "password": "pw", "auth": "basic"}

    def unreachable_config(self) -> dict[str, object]:
        return {"url": "http://127.0.0.1:9/snap.jpg", "timeout": 0.5, "reconnect_initial": 0.1}

    def bad_credentials_config(self) -> dict[str, object]:
        return {**self.valid_config(), "password": "wrong"}

    async def test_unreachable_peer_raises_not_ready(self, tmp_path: Path) -> None:  # type: ignore[override]
        # A dead snapshot URL is not a start error (the camera may come back): it keeps retrying
        # and counts reconnects, and the core reports camera_offline after the stall timeout.
        camera = self.build(tmp_path, self.unreachable_config())
        await camera.start()
        frames = camera.frames()
        import asyncio

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(frames), 1.0)
        await frames.aclose()  # type: ignore[attr-defined]
        await camera.stop()
        assert camera.stats.reconnects >= 1 and "ConnectError" in (camera.stats.last_error or "")


async def test_snapshot_frames_are_decoded_and_downscaled(snapshot_peer: SnapshotPeer, tmp_path: Path) -> None:
    config = SnapshotCamera.Config.model_validate(
        {"url": f"{snapshot_peer.base}/snap.jpg", "username": "viewer", "password": "pw", "auth": "basic",
         "interval": 0.05, "detect_width": 320}
    )  # fmt: skip
    camera = SnapshotCamera("front", config, make_context("front", tmp_path))
    await camera.start()
    frames = camera.frames()
    first, second = await anext(frames), await anext(frames)
    await frames.aclose()  # type: ignore[attr-defined]
    await camera.stop()
    assert first.image.shape == (240, 320, 3) and (first.width, first.height) == (320, 240)
    assert second.sequence > first.sequence and first.camera_id == "front"


async def test_snapshot_wrong_password_and_html_page(snapshot_peer: SnapshotPeer, tmp_path: Path) -> None:
    bad = SnapshotCamera.Config.model_validate(
        {"url": f"{snapshot_peer.base}/snap.jpg", "username": "viewer", "password": "nope", "auth": "basic"}
    )
    with pytest.raises(AuthFailed, match="camera 'front': authentication failed"):
        await SnapshotCamera("front", bad, make_context("front", tmp_path)).start()
    html = SnapshotCamera.Config.model_validate(
        {"url": f"{snapshot_peer.base}/page.html", "username": "viewer", "password": "pw", "auth": "basic"}
    )
    with pytest.raises(ConfigError, match="answered text/html, not an image"):
        await SnapshotCamera("front", html, make_context("front", tmp_path)).start()


async def test_file_replay_as_fast_as_possible_loses_no_frame(tmp_path: Path) -> None:
    config = FileCamera.Config.model_validate({"path": str(SAMPLE), "realtime": False, "loop": False})
    camera = FileCamera("replay", config, make_context("replay", tmp_path))
    await camera.start()
    sequences = [frame.sequence async for frame in camera.frames()]
    await camera.stop()
    # 300 frames at 10 fps capped to the default 5 fps detection rate: every second frame, none dropped.
    assert sequences == list(range(150))
    assert camera.stats.decoded == 300 and camera.stats.dropped == 0


async def test_slow_consumer_gets_the_latest_frame_and_drops_are_counted(tmp_path: Path) -> None:
    import asyncio

    config = FileCamera.Config.model_validate({"path": str(SAMPLE), "realtime": True, "detect_fps": 10})
    camera = FileCamera("slow", config, make_context("slow", tmp_path))
    await camera.start()
    frames = camera.frames()
    await anext(frames)
    await asyncio.sleep(1.0)  # a consumer that stalls for a second
    latest = await anext(frames)
    await frames.aclose()  # type: ignore[attr-defined]
    await camera.stop()
    assert latest.sequence >= 8  # it skipped ahead instead of replaying the backlog
    assert camera.stats.dropped >= 7


def test_probe_stream_reports_codec_resolution_and_counts() -> None:
    server = RtspServer().start()
    try:
        result = subprocess.run(
            [CLI, "probe-stream", server.url("live"), "--seconds", "4", "--json"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["codec"] == "h264" and (report["width"], report["height"]) == (640, 360)
    assert report["decoded"] >= 15 and report["reconnects"] == 0 and report["error"] is None
    assert 8 <= report["decoded_fps"] <= 20  # the server sends 15 fps


def test_probe_stream_names_the_problem() -> None:
    result = subprocess.run([CLI, "probe-stream", "rtsp://127.0.0.1:9/none", "--seconds", "1"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 1
    assert "error:       ConnectionRefusedError: Connection refused" in result.stdout
