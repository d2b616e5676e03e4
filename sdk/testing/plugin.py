"""The pytest plugin of the test kit (``pytest11`` entry point ``campusguard``). Opt-in: fixtures only."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

try:  # works in pytest-asyncio's strict and auto modes alike
    from pytest_asyncio import fixture as async_fixture
except ImportError:  # without pytest-asyncio the async fixture is unusable, but pytest still starts
    async_fixture = pytest.fixture  # type: ignore[assignment]

from .harness import RunningCore, load_harness

StartCore = Callable[..., AbstractAsyncContextManager[RunningCore]]


@pytest.fixture
def campusguard_core(tmp_path: Path) -> StartCore:
    """Start an in-process core: ``async with campusguard_core(toml, plugins={"name": plugin}) as core``.

    The core has its own plugin manager; ``plugins`` are registered inline, as if installed.
    Entry-point plugins (the built-ins included) load only with ``entry_points=True``.
    """
    harness = load_harness()

    def start(
        config: str = "", *, plugins: Mapping[str, object] | None = None, entry_points: bool = False
    ) -> AbstractAsyncContextManager[RunningCore]:
        return harness(config, data_dir=tmp_path / "campusguard", plugins=plugins or {}, entry_points=entry_points)

    return start


def _running_threads() -> set[threading.Thread]:
    # The loop's default executor ("asyncio_N" threads) is joined by the loop when it closes.
    return {t for t in threading.enumerate() if t.is_alive() and not t.name.startswith("asyncio_")}


@async_fixture
async def campusguard_no_lingering() -> AsyncIterator[None]:
    """Fail the test if it leaves asyncio tasks or threads running (like Home Assistant's kit)."""
    tasks_before = set(asyncio.all_tasks())
    threads_before = _running_threads()
    yield
    current = asyncio.current_task()
    deadline = time.monotonic() + 1.0
    while True:
        tasks = {t for t in asyncio.all_tasks() - tasks_before if t is not current and not t.done()}
        threads = {t for t in _running_threads() - threads_before if not t.daemon}
        if not tasks and not threads:
            return
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    names = [t.get_name() for t in tasks] + [f"thread {t.name}" for t in threads]
    pytest.fail(f"lingering after the test: {', '.join(sorted(names))}")
