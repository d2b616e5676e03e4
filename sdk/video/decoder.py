"""One decoder thread per camera: open, decode, pick frames at the detection rate, downscale once,
hand over the latest; on any failure reconnect with exponential backoff and jitter.

PyAV releases the GIL while FFmpeg demuxes and decodes, so one thread per camera scales across
cores; nothing here ever runs on the event loop.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..camera import CameraSourceConfig, CameraStats
from ..errors import AuthFailed
from ..models import Frame, StageStamp
from .mailbox import LatestMailbox
from .packets import PacketRing
from .redact import describe

Opener = Callable[[], Any]  # returns an opened av InputContainer


class NotAStream(Exception):
    """The address answered, but with something that is not video."""


@dataclass
class DecodeOptions:
    camera_id: str
    settings: CameraSourceConfig
    realtime: bool = False  # pace by timestamps (files); live streams pace themselves
    loop: bool = False  # start a file again at its end
    reconnect: bool = True  # after an error or the end of a live stream


def scaled_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """Downscale to ``target_width`` keeping the aspect, even sizes (for yuv420p); never upscale."""
    if width <= target_width:
        return width - width % 2, height - height % 2
    new_height = round(height * target_width / width)
    return target_width - target_width % 2, max(2, new_height - new_height % 2)


class RateCap:
    """Admits at most ``fps`` frames per second of stream time (the detection frame-rate cap)."""

    def __init__(self, fps: float) -> None:
        self.interval = 1.0 / fps
        self.next_due: float | None = None

    def admit(self, at: float | None) -> bool:
        if at is None:  # an untimed frame (the first of some RTSP streams): only before any timed one
            return self.next_due is None
        if self.next_due is None or at - self.next_due > self.interval:
            self.next_due = at + self.interval  # the first frame, or after a gap: restart the grid
            return True
        if at + 1e-6 < self.next_due:
            return False
        self.next_due += self.interval
        return True


class Pacer:
    """Plays a file as if live: how long to wait before the frame stamped ``at`` is due."""

    def __init__(self) -> None:
        self.start: tuple[float, float] | None = None  # (monotonic, stream time) of the first frame

    def delay(self, at: float) -> float:
        if self.start is None:
            self.start = (time.monotonic(), at)
        return max(0.0, (at - self.start[1]) - (time.monotonic() - self.start[0]))


class DecoderThread:
    def __init__(
        self, opener: Opener, options: DecodeOptions, stats: CameraStats, mailbox: LatestMailbox[Frame],
        packets: PacketRing | None = None,
    ) -> None:  # fmt: skip
        self._open = opener
        self.options = options
        self.stats = stats
        self.mailbox = mailbox
        self.packets = packets  # decoded packets are kept here (evidence clips), when it is enabled
        self.stop_event = threading.Event()
        self.first_outcome = threading.Event()  # set once the first connect succeeded or failed
        self.first_error: BaseException | None = None
        self._sequence = 0
        self._thread = threading.Thread(target=self._run, name=f"decoder:{options.camera_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_event.set()
        self.mailbox.close()
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        attempt = 0
        try:
            while not self.stop_event.is_set():
                try:
                    ended = self._session()
                    if not ended:
                        return  # stop was asked
                    attempt = 0
                    if ended and not (self.options.loop or self.options.reconnect):
                        self.mailbox.close()
                        return
                    if ended and self.options.loop:
                        continue  # a file: start again at once
                except AuthFailed as exc:
                    self._failed(exc)
                    self.mailbox.close(exc)  # retrying with the same credentials will not help
                    return
                except Exception as exc:
                    self._failed(exc)
                    if not self.options.reconnect:
                        self.mailbox.close(exc)
                        return
                attempt += 1
                self.stats.reconnects += 1
                settings = self.options.settings
                ceiling = min(settings.reconnect_max, settings.reconnect_initial * 2 ** (attempt - 1))
                self.stop_event.wait(random.uniform(ceiling / 2, ceiling))
        finally:
            self.stats.connected = False
            self.first_outcome.set()

    def _failed(self, exc: BaseException) -> None:
        self.stats.connected = False
        self.stats.last_error = describe(exc)
        if not self.first_outcome.is_set():
            self.first_error = exc
            self.first_outcome.set()

    def _session(self) -> bool:
        """Decode until the stream ends (True) or stop is asked (False); raise on errors."""
        import av

        try:
            container = self._open()
        except av.error.HTTPUnauthorizedError as exc:
            raise AuthFailed(f"authentication failed ({describe(exc)})") from exc
        except av.error.HTTPForbiddenError as exc:
            raise AuthFailed(f"access forbidden ({describe(exc)})") from exc
        except av.error.InvalidDataError as exc:
            raise NotAStream(f"not a video stream ({describe(exc)})") from exc
        try:
            if not container.streams.video:
                raise NotAStream("the address has no video stream")
            stream = container.streams.video[0]
            stats = self.stats
            stats.codec = stream.codec_context.name
            stats.width, stats.height = stream.codec_context.width, stream.codec_context.height
            stats.stream_fps = float(stream.average_rate) if stream.average_rate else None
            stats.connected = True
            stats.last_error = None
            self.first_outcome.set()
            if self.packets is not None:
                self.packets.open_session(stream)
            return self._decode(container, stream)
        finally:
            if self.packets is not None:
                self.packets.close_session()  # before close: the ring copies what it needs of the stream
            container.close()

    def _decode(self, container: Any, stream: Any) -> bool:
        settings = self.options.settings
        cap = RateCap(settings.detect_fps)
        pace = Pacer() if self.options.realtime else None
        size: tuple[int, int] | None = None
        ring = self.packets
        for packet in container.demux(stream):
            if self.stop_event.is_set():
                return False
            demuxed = time.monotonic()
            frames = packet.decode()
            if ring is not None and ring.seconds:
                ring.add(packet, demuxed)  # after decoding: from now on nothing here touches the packet
            for frame in frames:
                self.stats.decoded += 1
                at = float(frame.time) if frame.time is not None else None
                if pace is not None and at is not None and self.stop_event.wait(pace.delay(at)):
                    return False
                if not cap.admit(at):
                    continue  # above the detection rate: decoded (H.264 needs it) but never converted
                if size is None or (frame.width, frame.height) != (self.stats.width, self.stats.height):
                    self.stats.width, self.stats.height = frame.width, frame.height
                    size = scaled_size(frame.width, frame.height, settings.detect_width)
                captured = StageStamp.now()
                image = frame.to_ndarray(width=size[0], height=size[1], format="bgr24")
                self.mailbox.put(
                    Frame(
                        camera_id=self.options.camera_id,
                        sequence=self._sequence,
                        captured=captured,
                        width=size[0],
                        height=size[1],
                        image=image,
                    ),
                    self.stop_event,
                )
                self._sequence += 1
                self.stats.delivered += 1
                self.stats.dropped = self.mailbox.dropped
        return True
