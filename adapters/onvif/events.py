"""A camera's own events through an ONVIF PullPoint subscription, handed to a callback as CameraEvents.

One task per camera: subscribe, long-poll PullMessages, renew before the subscription runs out,
and unsubscribe on the way out. When the camera restarts its subscriptions are gone (a fault, or
the connection drops): the loop logs in again and subscribes anew, with backoff. Wrong credentials
end the loop with ``AuthFailed``.

onvif-zeep-async's ``PullPointManager`` renews from timer callbacks but does not pull; renewing
from the pull loop itself keeps one task per camera, so a long poll never races a renewal.

Use::

    subscriber = PullPointSubscriber(target, on_event=publish)
    subscriber.start()      # or: await subscriber.run() in a task you own
    ...
    await subscriber.stop() # unsubscribes, closes
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from campusguard.sdk import AuthFailed, CameraEvent, CampusguardError, cancel_and_wait

from .client import OnvifSession, OnvifTarget, connect
from .errors import Unsupported
from .event_messages import to_camera_event
from .lib import util as _util

EVENTS_NS = "http://www.onvif.org/ver10/events/wsdl"
PULLPOINT_NS = f"{EVENTS_NS}/PullPointSubscription"
EventCallback = Callable[[CameraEvent], Awaitable[None]]
# Keep each long poll well under onvif-zeep-async's 90 s socket read timeout.
MAX_PULL_SECONDS = 60.0


@dataclass
class PullPointStats:
    subscribed: bool = False
    subscriptions: int = 0  # created, including re-subscriptions after a restart
    renewals: int = 0
    pulls: int = 0
    events: int = 0
    unreadable: int = 0  # messages that could not be turned into a CameraEvent
    callback_errors: int = 0
    errors: int = 0
    last_error: str | None = None


@dataclass
class _Subscription:
    address: str
    renew_at: float  # loop time


class PullPointSubscriber:
    """Runs one camera's PullPoint loop and awaits ``on_event`` for each event, in order."""

    def __init__(
        self,
        target: OnvifTarget,
        on_event: EventCallback,
        *,
        termination: float = 60.0,
        pull_timeout: float = 20.0,
        message_limit: int = 100,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        logger: logging.Logger | None = None,
    ) -> None:
        self.target = target
        self.on_event = on_event
        self.termination = termination
        self.pull_timeout = min(pull_timeout, MAX_PULL_SECONDS)
        self.message_limit = message_limit
        self.retry_initial, self.retry_max = retry_initial, retry_max
        self.log = logger or logging.getLogger(__name__)
        self.stats = PullPointStats()
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return f"camera '{self.target.camera_id}' events"

    def start(self) -> asyncio.Task[None]:
        """Run :meth:`run` in a task of its own (once)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"onvif-events:{self.target.camera_id}")
        return self._task

    async def stop(self) -> None:
        """Cancel the loop; it unsubscribes and closes on the way out. Idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task)

    async def run(self) -> None:
        """Subscribe and pull until cancelled; re-subscribe after any failure but ``AuthFailed``."""
        delay, streak = self.retry_initial, 0
        while True:
            created_before = self.stats.subscriptions
            try:
                await self._session_cycle()  # returns only by raising
            except AuthFailed as exc:
                self._failed(exc)
                raise
            except Exception as exc:
                # Anything else is retried too: a camera's events must not stop for good over one bad answer.
                self._failed(exc)
                if self.stats.subscriptions > created_before:  # it worked until now: start over quickly
                    delay, streak = self.retry_initial, 0
                streak += 1
                # Say it once per outage; the retries after that are noise.
                level = logging.WARNING if streak == 1 else logging.DEBUG
                expected = isinstance(exc, CampusguardError)
                self.log.log(level, "%s: %s; subscribing again in %.1f s", self.name, exc, delay, exc_info=not expected)
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    def _failed(self, exc: BaseException) -> None:
        self.stats.subscribed = False
        self.stats.errors += 1
        self.stats.last_error = str(exc) or type(exc).__name__

    async def _session_cycle(self) -> None:
        session = await connect(self.target)
        subscription: _Subscription | None = None
        try:
            if not session.offers(EVENTS_NS):
                raise Unsupported(f"camera '{self.target.camera_id}' offers no ONVIF event service")
            subscription = await self._subscribe(session)
            while True:
                await self._pull_once(session, subscription)
        finally:
            self.stats.subscribed = False
            if subscription is not None:
                await self._unsubscribe(session)
            await session.close()

    async def _subscribe(self, session: OnvifSession) -> _Subscription:
        result = await session.call(
            "events", "CreatePullPointSubscription", {"InitialTerminationTime": f"PT{int(self.termination)}S"}
        )
        try:
            address = _util.normalize_url(result.SubscriptionReference.Address._value_1)
        except AttributeError:
            address = None
        if not address:
            raise Unsupported(f"camera '{self.target.camera_id}' created a PullPoint subscription without an address")
        # The subscription manager and the pull point live at the address the camera returned.
        session.camera.xaddrs[PULLPOINT_NS] = session.camera.rewrite_url(address)
        subscription = _Subscription(address, self._renew_at(result))
        self.stats.subscriptions += 1
        self.stats.subscribed = True
        self.log.info("%s: PullPoint subscription %s", self.name, address)
        return subscription

    async def _pull_once(self, session: OnvifSession, subscription: _Subscription) -> None:
        loop = asyncio.get_running_loop()
        # Renew early rather than poll for less than a second (the Timeout is in whole seconds).
        if loop.time() >= subscription.renew_at - 1.0:
            result = await session.call(
                "subscription",
                "Renew",
                {"TerminationTime": f"PT{int(self.termination)}S"},
                port_type="PullPointSubscription",
            )
            subscription.renew_at = self._renew_at(result)
            self.stats.renewals += 1
        # A long poll must not outlast the next renewal.
        wait = max(1, min(int(self.pull_timeout), int(subscription.renew_at - loop.time())))
        result = await session.call(
            "pullpoint",
            "PullMessages",
            {"MessageLimit": self.message_limit, "Timeout": timedelta(seconds=wait)},
            timeout=wait + self.target.timeout,
            port_type="PullPointSubscription",
        )
        self.stats.pulls += 1
        for notification in getattr(result, "NotificationMessage", None) or []:
            await self._deliver(notification)

    async def _deliver(self, notification: Any) -> None:
        try:
            event = to_camera_event(self.target.camera_id, notification)
        except (ValueError, TypeError, AttributeError) as exc:
            self.stats.unreadable += 1
            self.log.warning("%s: skipped a message that could not be read: %s", self.name, exc)
            return
        self.stats.events += 1
        try:
            await self.on_event(event)
        except Exception:
            # The callback's failure is its own; the subscription keeps running.
            self.stats.callback_errors += 1
            self.log.exception("%s: the event handler failed on %s", self.name, event.topic)

    async def _unsubscribe(self, session: OnvifSession) -> None:
        """Best effort and bounded: an unreachable camera drops the subscription when it expires."""
        with contextlib.suppress(Exception):
            await session.call(
                "subscription", "Unsubscribe", timeout=min(self.target.timeout, 3.0), port_type="PullPointSubscription"
            )

    def _renew_at(self, result: Any) -> float:
        """Renew at 80 % of the time the camera granted (its own clock, so skew does not matter)."""
        granted = self.termination
        current, termination = getattr(result, "CurrentTime", None), getattr(result, "TerminationTime", None)
        with contextlib.suppress(TypeError):
            if current is not None and termination is not None:
                granted = (termination - current).total_seconds()
        return asyncio.get_running_loop().time() + max(1.0, 0.8 * granted)
