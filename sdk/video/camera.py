"""The base of PyAV-based camera sources: a decoder thread, a latest-frame mailbox, a bounded start,
and (on request) a ring of the recent encoded packets for evidence clips (:class:`PacketSource`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from ..camera import CameraSourceConfig
from ..components import CameraSource
from ..errors import AuthFailed, ConfigError, NotReady
from ..models import Frame
from .decoder import DecodeOptions, DecoderThread, NotAStream
from .mailbox import LatestMailbox, MailboxClosed
from .packets import DEFAULT_MAX_BYTES, PacketRing, PacketSnapshot


class DecodingCamera(CameraSource):
    """Subclasses say how to open the container and how to decode it.

    It is a :class:`~campusguard.sdk.video.PacketSource`: once asked to (``retain_packets``), its
    decoder thread keeps the last seconds of the encoded stream for evidence clips.
    """

    #: seconds ``start()`` waits for the first connection before going on (the camera then counts
    #: as offline until frames arrive, which raises ``camera_offline`` after its stall timeout)
    first_connect_wait: float = 5.0
    _decoder: DecoderThread | None = None
    _packets: PacketRing | None = None

    def open_container(self) -> Any:
        raise NotImplementedError

    def decode_options(self) -> DecodeOptions:
        assert isinstance(self.config, CameraSourceConfig)
        return DecodeOptions(camera_id=self.name, settings=self.config)

    def block_when_full(self) -> bool:
        return False

    # -- PacketSource ----------------------------------------------------------------------------

    def retain_packets(self, seconds: float, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if self._packets is None:
            self._packets = PacketRing(seconds, max_bytes)
        else:
            self._packets.retain(seconds, max_bytes)

    def recent_packets(self, since: float) -> PacketSnapshot | None:
        return self._packets.snapshot(since) if self._packets is not None else None

    @property
    def packet_ring(self) -> PacketRing:
        """The ring the decoder thread fills (empty, and costing nothing, until ``retain_packets``)."""
        if self._packets is None:
            self._packets = PacketRing()
        return self._packets

    async def start(self) -> None:
        self._mailbox: LatestMailbox[Frame] = LatestMailbox(asyncio.get_running_loop(), block=self.block_when_full())
        decoder = self._decoder = DecoderThread(
            self.open_container, self.decode_options(), self.stats, self._mailbox, self.packet_ring
        )
        decoder.start()
        deadline = time.monotonic() + self.first_connect_wait
        while not decoder.first_outcome.is_set() and time.monotonic() < deadline:  # noqa: ASYNC110 - a thread event
            await asyncio.sleep(0.02)
        error = decoder.first_error
        if isinstance(error, AuthFailed):
            await self.stop()
            raise AuthFailed(f"camera {self.name!r}: {error}")
        if isinstance(error, NotAStream):
            await self.stop()
            raise ConfigError(f"camera {self.name!r}: {error}")
        if error is not None or not self.stats.connected:
            self.log.warning(
                "camera %r not connected yet (%s); retrying in the background",
                self.name, self.stats.last_error or "no answer",
            )  # fmt: skip

    async def stop(self) -> None:
        decoder = getattr(self, "_decoder", None)
        if decoder is None:
            return
        self._decoder = None
        decoder.stop_event.set()
        decoder.mailbox.close()
        deadline = time.monotonic() + 5.0
        while decoder.alive and time.monotonic() < deadline:  # noqa: ASYNC110 - PyAV read timeout bounds it
            await asyncio.sleep(0.01)
        if decoder.alive:
            self.log.error("decoder of camera %r did not stop within 5 s", self.name)

    async def frames(self) -> AsyncIterator[Frame]:
        while True:
            try:
                frame = await self._mailbox.get()
            except MailboxClosed as closed:
                if isinstance(closed.reason, AuthFailed):
                    raise AuthFailed(f"camera {self.name!r}: {closed.reason}") from None
                if closed.reason is not None:
                    raise NotReady(f"camera {self.name!r}: {closed.reason}") from None
                return
            yield frame
