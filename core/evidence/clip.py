"""Evidence clips: the camera's own encoded packets remuxed into MP4, never decoded or re-encoded.

Runs in a worker thread. The packets are shared with the camera's ring (and with any other clip
cut from it): ``mux()`` rewrites a packet's timestamps in place, so each packet gets its original
``pts``/``dts``/``time_base`` (rebased so the clip starts at 0) before it is muxed, and gets them
back afterwards. Two clips must not be muxed from the same packets at the same time: the
recorder writes clips one after another on a single thread.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from campusguard.sdk.video import PacketSnapshot, RingPacket

from .files import WrittenFile, partial_path, seal


@dataclass(frozen=True)
class ClipWritten:
    file: WrittenFile
    packets: int
    seconds: float  # stream time from the first to the last packet
    starts_at: float  # monotonic time the first packet was demuxed (its keyframe)
    write_seconds: float


def select(packets: tuple[RingPacket, ...], start: float, end: float) -> tuple[RingPacket, ...]:
    """From the last keyframe at or before ``start`` (or the first) through the last packet at or before ``end``."""
    first = 0
    last = -1
    for index, entry in enumerate(packets):
        if entry.at > end:
            break
        last = index
        if entry.keyframe and entry.at <= start:
            first = index
    if last < first or not packets or not packets[first].keyframe:
        return ()
    return packets[first : last + 1]


def _template_stream(output: Any, template: Any) -> Any:
    try:
        return output.add_stream_from_template(template)
    except ValueError:
        # No encoder of that name in this FFmpeg build (PyAV looks one up): copy the decoder's.
        return output.add_stream_from_template(template, opaque=True)


def write_clip(snapshot: PacketSnapshot, start: float, end: float, path: Path) -> ClipWritten | None:
    """Write the packets demuxed between monotonic ``start`` and ``end`` (from the keyframe before
    ``start``) to ``path`` as MP4 with ``+faststart``; None when there are none."""
    import av

    began = time.perf_counter()
    packets = select(snapshot.packets, start, end)
    if not packets:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    base = packets[0].dts  # dts only grows in decode order; with B-frames the first pts is later
    time_base = snapshot.time_base
    try:
        with av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"}) as output:
            stream = _template_stream(output, snapshot.template)
            try:
                for entry in packets:
                    packet = entry.packet
                    packet.time_base = time_base
                    packet.pts = entry.pts - base
                    packet.dts = entry.dts - base
                    packet.stream = stream
                    output.mux(packet)
            finally:
                for entry in packets:  # leave the shared packets as the demuxer made them
                    entry.packet.time_base = time_base
                    entry.packet.pts, entry.packet.dts = entry.pts, entry.dts
                    entry.packet.stream = snapshot.template  # not this clip's stream: it closes now
        written = seal(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    seconds = float((max(p.pts for p in packets) - min(p.pts for p in packets)) * time_base)
    return ClipWritten(written, len(packets), seconds, packets[0].at, time.perf_counter() - began)
