"""A one-slot mailbox between a decoder thread and the event loop: latest frame wins.

The decoder never waits for the consumer: a frame not yet taken is replaced by the newer one and
counted as dropped. (Replay of a file as fast as possible sets ``block=True`` instead, so no frame
is lost.) Handing over costs one ``call_soon_threadsafe``; decoding stays off the loop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class MailboxClosed(Exception):
    """The producer is done; ``reason`` says why (an exception to re-raise, or None at the end)."""

    def __init__(self, reason: BaseException | None) -> None:
        self.reason = reason
        super().__init__(str(reason) if reason else "end of stream")


class LatestMailbox(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, *, block: bool = False) -> None:
        self._loop = loop
        self._block = block
        self._lock = threading.Lock()
        self._space = threading.Condition(self._lock)
        self._item: T | None = None
        self._closed: MailboxClosed | None = None
        self._ready = asyncio.Event()
        self.dropped = 0

    # -- producer side (any thread) ---------------------------------------------------------------

    def put(self, item: T, stop: threading.Event | None = None) -> None:
        with self._lock:
            if self._block:
                while self._item is not None and self._closed is None and not (stop and stop.is_set()):
                    self._space.wait(0.1)
            elif self._item is not None:
                self.dropped += 1
            self._item = item
        self._wake()

    def close(self, reason: BaseException | None = None) -> None:
        with self._lock:
            if self._closed is None:
                self._closed = MailboxClosed(reason)
            self._space.notify_all()
        self._wake()

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            pass

    # -- consumer side (the event loop) ----------------------------------------------------------

    async def get(self) -> T:
        while True:
            with self._lock:
                item, self._item = self._item, None
                closed = self._closed
                if item is not None:
                    self._space.notify_all()
                    return item
                if closed is not None:
                    raise closed
                self._ready.clear()
            await self._ready.wait()
