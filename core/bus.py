"""The in-process event bus: one bounded mailbox and one task per subscriber.

``publish`` is synchronous and O(subscribers): it appends to each mailbox and returns, so a slow
or hanging subscriber never stalls a publisher or another subscriber. Telemetry subscriptions
drop their oldest message when full (counted); life-safety subscriptions never drop.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict, deque
from typing import Any

from campusguard.sdk import cancel_and_wait
from campusguard.sdk.bus import Handler, M, Overflow, Topic

log = logging.getLogger("campusguard.bus")


class InProcessSubscription:
    """One subscriber: its mailbox, its task and its counters."""

    def __init__(
        self,
        bus: InProcessBus,
        topic: Topic[Any],
        handler: Handler[Any],
        name: str,
        overflow: Overflow,
        maxsize: int,
    ) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._bus = bus
        self.topic = topic
        self._handler = handler
        self._name = name
        self.overflow = overflow
        self.maxsize = maxsize
        self._mailbox: deque[Any] = deque()
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._over_bound_warned = False
        self._delivered = 0
        self._dropped = 0
        self._failed = 0
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"bus:{topic.name}:{name}")

    @property
    def name(self) -> str:
        return self._name

    @property
    def delivered(self) -> int:
        return self._delivered

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def failed(self) -> int:
        return self._failed

    @property
    def backlog(self) -> int:
        return len(self._mailbox)

    def offer(self, message: Any) -> None:
        mailbox = self._mailbox
        if len(mailbox) >= self.maxsize:
            if self.overflow is Overflow.DROP_OLDEST:
                mailbox.popleft()
                self._dropped += 1
            elif not self._over_bound_warned:
                self._over_bound_warned = True
                log.warning(
                    "subscriber %r of %r is %d messages behind; nothing is dropped (never-drop topic)",
                    self._name,
                    self.topic.name,
                    len(mailbox),
                )
        mailbox.append(message)
        if self._idle.is_set():
            self._idle.clear()
        if not self._wakeup.is_set():
            self._wakeup.set()

    async def _run(self) -> None:
        mailbox = self._mailbox
        while True:
            if not mailbox:
                self._idle.set()
                self._over_bound_warned = False
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            message = mailbox.popleft()
            try:
                await self._handler(message)
                self._delivered += 1
            except asyncio.CancelledError:
                raise
            except Exception:
                self._failed += 1
                log.exception("subscriber %r of %r failed on message %s", self._name, self.topic.name, message.id)

    async def drain(self) -> None:
        """Wait until the mailbox is empty and the handler is idle."""
        await self._idle.wait()

    async def close(self) -> None:
        self._bus._remove(self)
        await cancel_and_wait(self._task)


class InProcessBus:
    """The embedded :class:`~campusguard.sdk.Bus`."""

    def __init__(self) -> None:
        self._subscribers: defaultdict[str, list[InProcessSubscription]] = defaultdict(list)
        self._closed = False

    def publish(self, topic: Topic[M], message: M) -> None:
        if not isinstance(message, topic.model):
            raise TypeError(f"topic {topic.name!r} carries {topic.model.__name__}, got {type(message).__name__}")
        if self._closed:
            log.warning("bus closed: message %s on %r not delivered", message.id, topic.name)
            return
        for subscriber in self._subscribers.get(topic.name, ()):
            subscriber.offer(message)

    def subscribe(
        self,
        topic: Topic[M],
        handler: Handler[M],
        *,
        name: str,
        overflow: Overflow | None = None,
        maxsize: int = 1024,
    ) -> InProcessSubscription:
        subscription = InProcessSubscription(self, topic, handler, name, overflow or topic.default_overflow, maxsize)
        self._subscribers[topic.name].append(subscription)
        return subscription

    def subscriptions(self) -> list[InProcessSubscription]:
        return [s for subs in self._subscribers.values() for s in subs]

    def _remove(self, subscription: InProcessSubscription) -> None:
        subs = self._subscribers.get(subscription.topic.name, [])
        if subscription in subs:
            subs.remove(subscription)

    async def close(self, drain_timeout: float = 2.0) -> None:
        """Let never-drop subscribers finish what they hold (bounded), then stop every task."""
        self._closed = True
        subs = self.subscriptions()
        life_safety = [s.drain() for s in subs if s.overflow is Overflow.NEVER_DROP]
        if life_safety:
            try:
                await asyncio.wait_for(asyncio.gather(*life_safety), drain_timeout)
            except TimeoutError:
                left = sum(s.backlog for s in subs if s.overflow is Overflow.NEVER_DROP)
                log.error("bus closed with %d life-safety messages undelivered in memory", left)
        for sub in subs:
            await sub.close()
