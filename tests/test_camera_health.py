"""Camera health through the whole pipeline: real footage, tampered in the test, played as a camera."""

from __future__ import annotations

import asyncio
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from peers.rtsp import SAMPLE

from campusguard.sdk import FRAMES, Frame, Incident
from campusguard.sdk.testing import RecordingNotifier, RecordingPlugin

pytestmark = pytest.mark.slow


def sample_frames() -> list[np.ndarray]:
    with av.open(str(SAMPLE)) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 10) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def covered(image: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.clip(rng.normal(8, 3, image.shape), 0, 255).astype(np.uint8)


def defocused(image: np.ndarray) -> np.ndarray:
    return cv2.GaussianBlur(image, (0, 0), 8)


def shifted(image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    return cv2.warpAffine(image, np.float32([[1, 0, w * 0.3], [0, 1, h * 0.1]]), (w, h), borderMode=cv2.BORDER_REFLECT)


CONFIG = """
[cameras.hall]
type = "file"
path = "{path}"
realtime = true
loop = false
detect_fps = 10
stall_timeout = 30
tamper.reference_seconds = 3
tamper.hold_seconds = 1

[notifiers.recorder]
"""


async def play(campusguard_core, path: Path, seconds: float) -> tuple[list[Incident], list[Frame]]:  # type: ignore[no-untyped-def]
    RecordingNotifier.received.clear()
    frames: list[Frame] = []

    async def keep(frame: Frame) -> None:
        frames.append(frame)

    async with campusguard_core(
        CONFIG.format(path=path), plugins={"recorder": RecordingPlugin()}, entry_points=True
    ) as core:
        core.api.bus.subscribe(FRAMES, keep, name="test", maxsize=10_000)
        await asyncio.sleep(seconds)
        await core.wait_delivered("recorder", len(RecordingNotifier.received))
    return list(RecordingNotifier.received), frames


@pytest.mark.parametrize(("tamper", "condition"), [(covered, "covered"), (defocused, "defocused"), (shifted, "moved")])
async def test_tampering_raises_one_camera_tamper_incident(
    campusguard_core, tmp_path: Path, tamper, condition: str
) -> None:  # type: ignore[no-untyped-def]
    real = sample_frames()
    clip = real[:60] + [tamper(f) for f in real[60:100]]  # 6 s normal, then 4 s tampered
    incidents, _ = await play(campusguard_core, write_clip(tmp_path / "clip.mp4", clip), 10.5)
    tampers = [i for i in incidents if i.kind == "camera_tamper"]
    assert len(tampers) == 1, [i.title for i in incidents]
    assert condition in tampers[0].title and tampers[0].camera_id == "hall"


async def test_benign_footage_raises_nothing_and_gates_on_motion(campusguard_core, tmp_path: Path) -> None:
    real = sample_frames()
    still = [real[0]] * 40  # 4 s of an unchanging view, then people walk: motion only then
    incidents, frames = await play(campusguard_core, write_clip(tmp_path / "clip.mp4", still + real[:100]), 14.5)
    assert incidents == []
    assert len(frames) >= 135
    calibrating, empty, walking = frames[:10], frames[12:40], frames[45:140]
    assert all(f.motion and not f.regions for f in calibrating)  # whole frame to detection while it learns
    assert not any(f.motion for f in empty)
    assert sum(f.motion for f in walking) >= 0.9 * len(walking)
    assert all(f.regions for f in walking if f.motion)
    assert all(0 <= r.x1 < r.x2 <= 640 and 0 <= r.y1 < r.y2 <= 480 for f in walking for r in f.regions)
