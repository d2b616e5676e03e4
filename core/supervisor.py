"""Starts components, retries the ones that are not ready, and stops everything in bounded time.

States follow Home Assistant's config entries: a component that raises ``NotReady`` is retried
with backoff (``setup_retry``); ``AuthFailed`` stops it for good (``failed``); any other error on
start is a ``setup_error``. A component failing never touches another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from campusguard.sdk import AuthFailed, Component, NotReady

from .backoff import backoff_delay
from .config import ComponentSpec

log = logging.getLogger("campusguard.supervisor")


class ComponentState(StrEnum):
    NOT_LOADED = "not_loaded"
    LOADED = "loaded"
    SETUP_ERROR = "setup_error"
    SETUP_RETRY = "setup_retry"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass
class Supervised:
    spec: ComponentSpec
    instance: Component
    state: ComponentState = ComponentState.NOT_LOADED
    error: str | None = None
    attempts: int = 0
    first_attempt_done: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    @property
    def key(self) -> str:
        return f"{self.spec.table}.{self.spec.name}"


OnStarted = Callable[[Supervised], Awaitable[None]]


class Supervisor:
    def __init__(
        self,
        *,
        start_timeout: float,
        stop_timeout: float,
        retry_initial: float,
        retry_max: float,
        on_started: OnStarted | None = None,
        on_stopping: OnStarted | None = None,
    ) -> None:
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self._on_started = on_started
        self._on_stopping = on_stopping
        self.components: dict[str, Supervised] = {}

    def add(self, spec: ComponentSpec, instance: Component) -> Supervised:
        supervised = Supervised(spec, instance)
        self.components[supervised.key] = supervised
        return supervised

    async def start_all(self, wait: float | None = None) -> None:
        """Start every component concurrently; wait (bounded) for each one's first attempt."""
        for supervised in self.components.values():
            supervised.task = asyncio.create_task(self._keep_starting(supervised), name=f"start:{supervised.key}")
        waits = [s.first_attempt_done.wait() for s in self.components.values()]
        if waits:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*waits), wait or self.start_timeout + 1)

    async def _keep_starting(self, s: Supervised) -> None:
        while True:
            s.attempts += 1
            try:
                await asyncio.wait_for(s.instance.start(), self.start_timeout)
            except NotReady as exc:
                await self._stop_quietly(s)
                delay = backoff_delay(s.attempts, self.retry_initial, self.retry_max)
                self._set(s, ComponentState.SETUP_RETRY, f"not ready: {exc}; retrying in {delay:.1f}s")
                s.first_attempt_done.set()
                await asyncio.sleep(delay)
                continue
            except TimeoutError:
                await self._stop_quietly(s)
                delay = backoff_delay(s.attempts, self.retry_initial, self.retry_max)
                self._set(
                    s,
                    ComponentState.SETUP_RETRY,
                    f"start took longer than {self.start_timeout:g}s; retrying in {delay:.1f}s",
                )
                s.first_attempt_done.set()
                await asyncio.sleep(delay)
                continue
            except AuthFailed as exc:
                await self._stop_quietly(s)
                self._set(s, ComponentState.FAILED, f"authentication failed: {exc}")
            except Exception as exc:
                await self._stop_quietly(s)
                self._set(s, ComponentState.SETUP_ERROR, f"{type(exc).__name__}: {exc}")
                log.debug("start of %s failed", s.key, exc_info=True)
            else:
                self._set(s, ComponentState.LOADED, None)
                if self._on_started is not None:
                    await self._on_started(s)
            s.first_attempt_done.set()
            return

    def _set(self, s: Supervised, state: ComponentState, error: str | None) -> None:
        s.state, s.error = state, error
        level = logging.INFO if state is ComponentState.LOADED else logging.WARNING
        if state in (ComponentState.FAILED, ComponentState.SETUP_ERROR):
            level = logging.ERROR
        log.log(level, "%s (%s): %s%s", s.key, s.spec.kind, state, f": {error}" if error else "")

    async def fail(self, key: str, error: str) -> None:
        """A running component reported a fatal error (e.g. credentials revoked): stop it."""
        s = self.components[key]
        if s.state is ComponentState.FAILED:
            return
        self._set(s, ComponentState.FAILED, error)
        await self._stopping(s)
        await self._stop_quietly(s)

    async def _stopping(self, s: Supervised) -> None:
        if self._on_stopping is not None:
            await self._on_stopping(s)

    async def _stop_quietly(self, s: Supervised) -> None:
        try:
            await asyncio.wait_for(s.instance.stop(), self.stop_timeout)
        except TimeoutError:
            log.error("%s: stop took longer than %gs; abandoned", s.key, self.stop_timeout)
        except Exception:
            log.exception("%s: stop raised", s.key)

    async def stop_all(self) -> None:
        """Cancel pending retries and stop every started component, concurrently and bounded."""
        for s in self.components.values():
            if s.task is not None and not s.task.done():
                s.task.cancel()
        tasks = [s.task for s in self.components.values() if s.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

        async def stop_one(s: Supervised) -> None:
            if s.state is ComponentState.LOADED:
                await self._stopping(s)
                await self._stop_quietly(s)
            if s.state is not ComponentState.FAILED:
                s.state = ComponentState.STOPPED

        await asyncio.gather(*(stop_one(s) for s in self.components.values()))
