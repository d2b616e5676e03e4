"""The last seconds of a camera's ENCODED stream, for evidence clips written without re-encoding.

The decoder thread hands every packet it has decoded to a :class:`PacketRing` (one reference, no
copy, no decode); the ring keeps the newest ``seconds`` (plus whatever reaches back to the keyframe
before them) and at most ``max_bytes``, and always starts at a keyframe so that a clip cut from it
decodes from its first packet. A ring whose ``seconds`` is 0 keeps nothing and costs one attribute
check per packet: cameras buffer only once the core asks them to (evidence clips on).

Camera sources offer their ring through the :class:`PacketSource` capability, which the core finds
with ``isinstance``; :class:`~campusguard.sdk.video.DecodingCamera` implements it, and a vendor's
source can too. The packets are shared, not copied: a writer sets a packet's ``pts``/``dts``/
``time_base``/``stream`` from the originals kept in :class:`RingPacket` before each mux (``mux()``
rewrites them in place), and never muxes the same packets from two threads at once.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol, runtime_checkable

#: what a ring may hold when nobody said: enough for any GOP of a 4 Mbit/s camera and then some
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RingPacket:
    """One encoded packet and what its demuxer said about it (kept: muxing rewrites the packet)."""

    at: float  # time.monotonic() when it was demuxed (the clock of ``Frame.captured.monotonic``)
    packet: Any  # av.Packet
    pts: int
    dts: int
    keyframe: bool
    size: int


@dataclass(frozen=True, slots=True)
class PacketSnapshot:
    """Packets of one stream session, oldest first, starting at a keyframe.

    ``template`` is a stream to pass to ``OutputContainer.add_stream_from_template``: a copy of the
    camera's codec parameters that stays valid after the camera's own container is closed.
    """

    template: Any
    time_base: Fraction
    packets: tuple[RingPacket, ...]

    @property
    def start(self) -> float:
        return self.packets[0].at if self.packets else 0.0

    @property
    def end(self) -> float:
        return self.packets[-1].at if self.packets else 0.0

    @property
    def size(self) -> int:
        return sum(p.size for p in self.packets)


@runtime_checkable
class PacketSource(Protocol):
    """A camera source that keeps its recent encoded packets (for evidence clips without re-encoding)."""

    def retain_packets(self, seconds: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        """Keep at least the last ``seconds`` of packets (back to a keyframe), at most ``max_bytes``.

        0 seconds stops buffering and frees what is held.
        """
        ...

    def recent_packets(self, since: float) -> PacketSnapshot | None:
        """Packets from the last keyframe at or before monotonic time ``since`` up to now.

        None when nothing is buffered (not asked to, not connected yet, or another codec session).
        """
        ...


def copy_template(stream: Any) -> Any:
    """A stream holding a copy of ``stream``'s codec parameters, independent of its container.

    A demuxed stream dies with its input container (a reconnect closes it); clips may be cut later
    from a thread of their own, so the ring keeps this copy, made in an output container that is
    never written.
    """
    import av

    holder = av.open(io.BytesIO(), "w", format="matroska")
    return holder.add_stream_from_template(stream)


class PacketRing:
    """A thread-safe ring of the newest encoded packets of one camera, bounded in time and bytes."""

    def __init__(self, seconds: float = 0.0, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        self._lock = threading.Lock()
        self._packets: deque[RingPacket] = deque()
        self._keys: deque[RingPacket] = deque()  # the keyframes among them; the first is _packets[0]
        self._bytes = 0
        self._source: Any = None  # the live stream of the open session (valid while it is open)
        self._template: Any = None  # copy_template(source), made when first needed
        self._time_base: Fraction | None = None
        self._need_key = True  # nothing buffered can start a clip until a keyframe arrives
        self.seconds = 0.0
        self.max_bytes = max_bytes
        self.dropped_bytes = 0  # packets dropped early because of max_bytes
        self.retain(seconds, max_bytes)

    # -- settings (any thread) --------------------------------------------------------------------

    def retain(self, seconds: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if seconds < 0 or max_bytes <= 0:
            raise ValueError("seconds must be >= 0 and max_bytes > 0")
        with self._lock:
            self.seconds, self.max_bytes = float(seconds), int(max_bytes)
            if not self.seconds:
                self._clear()
            else:
                self._trim()

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    # -- the decoder thread -----------------------------------------------------------------------

    def open_session(self, stream: Any) -> None:
        """A (re)connected stream: what was buffered belongs to the old one and is dropped."""
        with self._lock:
            self._clear()
            self._source = stream
            self._template = None
            self._time_base = stream.time_base

    def close_session(self) -> None:
        """Call BEFORE closing the container: packets stay usable through a copy of the template."""
        with self._lock:
            if self._packets and self._template is None and self._source is not None:
                try:
                    self._template = copy_template(self._source)
                except Exception:
                    self._clear()
            # A packet's stream dies with its container (even repr() reads it): point them at the copy.
            for entry in self._packets:
                entry.packet.stream = self._template
            self._source = None

    def add(self, packet: Any, at: float) -> None:
        """Keep ``packet`` (already decoded: nobody else touches it afterwards), demuxed at ``at``."""
        if not self.seconds:
            return
        pts, dts, size = packet.pts, packet.dts, packet.size
        if pts is None or dts is None or not size:
            return  # the first RTSP packets can be untimed; demux ends with an empty packet
        keyframe = bool(packet.is_keyframe)
        with self._lock:
            if self._need_key:
                if not keyframe:
                    return
                self._need_key = False
            entry = RingPacket(at, packet, pts, dts, keyframe, size)
            self._packets.append(entry)
            if keyframe:
                self._keys.append(entry)
            self._bytes += size
            self._trim()

    # -- readers (any thread) ---------------------------------------------------------------------

    def snapshot(self, since: float) -> PacketSnapshot | None:
        """Packets from the last keyframe at or before ``since`` (or the oldest) to the newest."""
        with self._lock:
            if not self._packets or self._time_base is None:
                return None
            if self._template is None:
                if self._source is None:
                    return None
                self._template = copy_template(self._source)  # under the lock: the source is still open
            packets = list(self._packets)
            template, time_base = self._template, self._time_base
        first = 0
        for index, entry in enumerate(packets):
            if entry.at > since:
                break
            if entry.keyframe:
                first = index
        return PacketSnapshot(template, time_base, tuple(packets[first:]))

    def __len__(self) -> int:
        return len(self._packets)

    @property
    def bytes(self) -> int:
        return self._bytes

    # -- internals (under the lock) ---------------------------------------------------------------

    def _clear(self) -> None:
        self._packets.clear()
        self._keys.clear()
        self._bytes = 0
        self._need_key = True

    def _trim(self) -> None:
        keys = self._keys
        if not keys:
            return
        newest = self._packets[-1].at
        # Drop whole GOPs from the front while the next keyframe still reaches back far enough.
        while len(keys) > 1 and newest - keys[1].at >= self.seconds:
            self._drop_gop()
        while self._bytes > self.max_bytes:
            if len(keys) < 2:  # one GOP alone is over the bound: start again at the next keyframe
                self.dropped_bytes += self._bytes
                self._clear()
                return
            before = self._bytes
            self._drop_gop()
            self.dropped_bytes += before - self._bytes

    def _drop_gop(self) -> None:
        packets, keys = self._packets, self._keys
        keys.popleft()
        following = keys[0]
        while packets[0] is not following:
            self._bytes -= packets.popleft().size
