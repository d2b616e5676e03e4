"""Delivery workers: one per notifier, draining that notifier's outbox in order.

Each worker is its own task and each ``notify()`` call has a deadline, so a notifier that hangs
or raises only delays its own deliveries. A failed delivery stays pending in the store with its
next attempt time, which is what makes deliveries survive ``kill -9``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from campusguard.sdk import AuthFailed, Dispatcher, Incident, Notifier, cancel_and_wait

from .backoff import backoff_delay
from .config import DeliverySettings
from .store import SQLiteStore

log = logging.getLogger("campusguard.delivery")

OnFatal = Callable[[str], Awaitable[None]]


class DeliveryWorker:
    def __init__(
        self,
        target: str,
        notifier: Notifier | Dispatcher,
        store: SQLiteStore,
        settings: DeliverySettings,
        on_fatal: OnFatal,
    ) -> None:
        self.target = target
        self.notifier = notifier
        self.store = store
        self.settings = settings
        self._on_fatal = on_fatal
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0
        self.failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"delivery:{self.target}")

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        # A worker that reports a fatal error is stopped from inside its own task: it returns by itself.
        await cancel_and_wait(self._task)
        self._task = None

    async def _sleep(self, seconds: float) -> None:
        """Sleep until ``seconds`` pass or new work arrives, whichever is first."""
        # Not wait_for: on 3.11 it swallows a cancel that lands just after wake() (the worker then
        # never stops); asyncio.timeout lets a stop's cancel through.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(seconds, 0.0)):
                await self._wakeup.wait()
        self._wakeup.clear()

    async def _run(self) -> None:
        while True:
            try:
                entry = await self.store.next_delivery(self.target)
            except Exception:
                log.exception("%s: outbox read failed", self.target)
                await self._sleep(self.settings.poll_interval)
                continue
            if entry is None:
                await self._sleep(self.settings.poll_interval)
                continue
            wait = entry.next_attempt_at - time.time()
            if wait > 0:
                # Head of line waits: deliveries to one target stay in order.
                await asyncio.sleep(wait)
                continue
            incident = Incident.model_validate_json(entry.payload)
            try:
                async with asyncio.timeout(self.settings.timeout):  # not wait_for: see _sleep
                    if isinstance(self.notifier, Notifier):
                        await self.notifier.notify(incident)
                    else:
                        await self.notifier.dispatch(incident)
            except asyncio.CancelledError:
                raise
            except AuthFailed as exc:
                await self.store.mark_retry(
                    entry.seq, f"authentication failed: {exc}", time.time() + self.settings.retry_max
                )
                await self._on_fatal(f"authentication failed: {exc}")
                return
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                self.failures += 1
                reason = f"no answer within {self.settings.timeout:g}s" if isinstance(exc, TimeoutError) else repr(exc)
                delay = backoff_delay(entry.attempts + 1, self.settings.retry_initial, self.settings.retry_max)
                log.warning(
                    "%s: delivery %s failed (%s); retry in %.1fs",
                    self.target,
                    entry.idempotency_key,
                    reason,
                    delay,
                )
                await self.store.mark_retry(entry.seq, reason, time.time() + delay)
                continue
            await self.store.mark_delivered(entry.seq)
            self.delivered += 1
