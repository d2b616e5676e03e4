"""``campusguard replay VIDEO``: the detection pipeline over a file, as fast as possible.

The tuning and evidence tool: the same detectors, tracker and analyzers as ``run`` (from the
config), the camera's own zones and motion settings, and time taken from the video's timestamps so
that durations (loitering, stillness) mean what they mean live. Writes one JSON object per line
and, optionally, an annotated video.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

from campusguard.sdk import INCIDENTS, OBSERVATIONS, CameraSourceConfig, Frame, Incident, Observation, StageStamp
from campusguard.sdk.models import utc_now
from campusguard.sdk.video import RateCap, describe, scaled_size

from .config import LoadedConfig
from .pipeline.annotate import Annotator
from .pipeline.motion import MotionGate, mark
from .pipeline.processor import FrameResult
from .runtime import Core


@dataclass
class ReplaySummary:
    video: str
    camera: str
    frames: int = 0
    processed: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    most_people: int = 0
    tracks: int = 0
    observations: dict[str, int] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    damage: str | None = None  # why decoding stopped early, for a truncated or corrupt file
    blind: list[str] = field(default_factory=list)  # analyzers no detector could feed, and why

    def as_text(self) -> str:
        lines = [
            f"{self.video} as camera {self.camera!r}",
            f"  frames:       {self.frames} decoded, {self.processed} through the pipeline",
            f"  speed:        {self.fps:.1f} frames/s ({self.seconds:.1f} s)",
            f"  most people:  {self.most_people} in one frame",
            f"  tracks:       {self.tracks}",
            f"  observations: {_counts(self.observations)}",
            f"  incidents:    {_counts(self.incidents)}",
        ]
        if self.damage:
            lines.append(f"  warning:      {self.damage}")
        lines += [f"  warning:      {reason}" for reason in self.blind]
        return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())) or "none"


def _camera_name(config: LoadedConfig, name: str | None) -> str:
    """The camera whose zones and settings the replay uses: the named one, else the first."""
    if name is not None:
        if name not in config.settings.cameras:
            known = ", ".join(config.settings.cameras) or "none"
            raise ValueError(f"camera {name!r} is not in {config.display}; cameras: {known}")
        return name
    return next(iter(config.settings.cameras), "replay")


def _decode_until_damage(container: Any, stream: Any, summary: ReplaySummary) -> Any:
    """Decoded frames; a damaged file ends the replay early with a note instead of a traceback."""
    import av

    try:
        yield from container.decode(stream)
    except av.error.FFmpegError as exc:
        summary.damage = f"the video is damaged after frame {summary.frames}: {describe(exc)}; replay stopped there"


class Replay:
    def __init__(self, core: Core, video: Path, camera: str, *, every_frame: bool = False) -> None:
        self.core = core
        self.video = video
        self.camera = camera
        self.settings = core.camera(camera) or CameraSourceConfig()
        self.every_frame = every_frame
        self.summary = ReplaySummary(str(video), camera)
        self._track_ids: set[int] = set()

    def frames(self) -> Any:
        """Decoded frames of the video, stamped with its own clock (pts), at the camera's rate."""
        import av

        cap = RateCap(self.settings.detect_fps)
        base_mono, base_wall = time.monotonic(), utc_now()
        try:
            container = av.open(str(self.video))
        except av.error.FFmpegError as exc:
            raise ValueError(f"{self.video}: not a readable video ({describe(exc)})") from None
        with container:
            if not container.streams.video:
                raise ValueError(f"{self.video}: has no video stream")
            stream = container.streams.video[0]
            size = scaled_size(stream.codec_context.width, stream.codec_context.height, self.settings.detect_width)
            for index, decoded in enumerate(_decode_until_damage(container, stream, self.summary)):
                self.summary.frames += 1
                at = float(decoded.time) if decoded.time is not None else index / float(stream.average_rate or 10)
                if not self.every_frame and not cap.admit(at):
                    continue
                image = decoded.to_ndarray(width=size[0], height=size[1], format="bgr24")
                captured = StageStamp(monotonic=base_mono + at, wall=base_wall + timedelta(seconds=at))
                yield (
                    index,
                    at,
                    Frame(
                        camera_id=self.camera,
                        sequence=index,
                        captured=captured,
                        width=size[0],
                        height=size[1],
                        image=image,
                    ),
                )

    async def run(self, out: IO[str] | None, annotate: Path | None) -> ReplaySummary:
        processor = self.core.processor
        if processor is None:
            raise ValueError("the config has no detectors or analyzers: nothing to replay")
        gate = MotionGate(self.settings.motion)
        annotator = Annotator(annotate, self.settings) if annotate else None
        index_of: dict[str, tuple[int, float]] = {}

        async def observed(observation: Observation) -> None:
            self.summary.observations[observation.kind] = self.summary.observations.get(observation.kind, 0) + 1

        async def raised(incident: Incident) -> None:
            kind = str(incident.kind)
            self.summary.incidents[kind] = self.summary.incidents.get(kind, 0) + 1
            if out is not None:
                frame_index, at = index_of.get(incident.evidence.frame_id or "", (None, None))
                out.write(json.dumps({"type": "incident", "frame": frame_index, "time": at,
                                      **json.loads(incident.model_dump_json())}) + "\n")  # fmt: skip

        subs = [
            self.core.bus.subscribe(OBSERVATIONS, observed, name="replay-observations"),
            self.core.bus.subscribe(INCIDENTS, raised, name="replay-incidents"),
        ]
        started = time.monotonic()
        frames = self.frames()

        def decode_next() -> Any:
            # Off the loop: decoding and the motion gate of the next frame overlap this frame's detection.
            item = next(frames, None)
            if item is not None:
                mark(item[2], gate.update(item[2].image))  # motion and its regions, as a camera does
            return item

        # Its own thread, at a lower CPU priority: decoding ahead fills the gaps the model leaves and
        # never takes a core from the model's threads (on 2 cores it otherwise slowed every pass).
        decoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="replay-decode", initializer=_lower_priority)
        loop = asyncio.get_running_loop()
        upcoming = loop.run_in_executor(decoder, decode_next)
        try:
            while (item := await upcoming) is not None:
                upcoming = loop.run_in_executor(decoder, decode_next)
                index, at, frame = item
                index_of[frame.id] = (index, at)
                (outcome,) = await processor.process([frame])
                self._record(outcome, index, at, out)
                if annotator is not None:
                    annotator.write(outcome)
        finally:
            if not upcoming.done():  # a thread cannot be cancelled: let the decode in flight finish
                with contextlib.suppress(Exception):
                    await upcoming
            decoder.shutdown(wait=True)
            if annotator is not None:
                annotator.close()
            if self.core.rules is not None:
                await self.core.rules.drain()  # its incidents must reach the summary below
            for sub in subs:
                await sub.drain()
                await sub.close()
        self.summary.seconds = time.monotonic() - started
        self.summary.fps = self.summary.processed / self.summary.seconds if self.summary.seconds else 0.0
        self.summary.tracks = len(self._track_ids)
        self.summary.blind = [gap.message() for gap in processor.coverage.gaps.values()]
        return self.summary

    def _record(self, outcome: FrameResult, index: int, at: float, out: IO[str] | None) -> None:
        self.summary.processed += 1
        people = sum(1 for d in outcome.detections if d.label == "person")
        self.summary.most_people = max(self.summary.most_people, people)
        self._track_ids.update(t.track_id for t in outcome.tracks)
        if out is None:
            return
        labels = Counter(d.label for d in outcome.detections)
        out.write(json.dumps({
            "type": "frame", "frame": index, "time": round(at, 3), "motion": outcome.frame.motion,
            "detected": outcome.detected, "detections": dict(labels),
            "tracks": [t.track_id for t in outcome.tracks],
            "flags": {str(t.track_id): sorted(t.flags) for t in outcome.tracks if t.flags},
            "second_looks": [[round(v) for v in (a.x1, a.y1, a.x2, a.y2)] for a in outcome.looked],
        }) + "\n")  # fmt: skip
        for observation in outcome.observations:
            out.write(json.dumps({"type": "observation", "frame": index, "time": round(at, 3),
                                  **json.loads(observation.model_dump_json())}) + "\n")  # fmt: skip


async def replay(
    config: LoadedConfig, video: Path, *, camera: str | None, out: Path | None, annotate: Path | None,
    every_frame: bool = False,
) -> ReplaySummary:  # fmt: skip
    name = _camera_name(config, camera)
    with tempfile.TemporaryDirectory(prefix="campusguard-replay-") as data_dir:
        # A replay's incidents are not the site's: they go to a scratch store.
        config.settings.core.data_dir = Path(data_dir)
        core = Core(config)
        core.prepare()
        async with core.running(include=lambda table: table != "cameras"):
            return await _run(core, video, name, out, annotate, every_frame)


async def _run(
    core: Core, video: Path, name: str, out: Path | None, annotate: Path | None, every_frame: bool
) -> ReplaySummary:
    handle = out.open("w", encoding="utf-8") if out else None
    try:
        return await Replay(core, video, name, every_frame=every_frame).run(handle, annotate)
    finally:
        if handle is not None:
            handle.close()


def _lower_priority() -> None:
    """Nice the calling thread (Linux schedules threads apart); elsewhere, leave it."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
