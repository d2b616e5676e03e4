"""``campusguard.sdk.cancel_and_wait``: how every background task of the core and the adapters is stopped."""

from __future__ import annotations

import asyncio

import pytest

from campusguard.sdk import cancel_and_wait


async def test_cancels_and_waits_for_each_and_skips_none_and_finished() -> None:
    cleaned: list[str] = []

    async def worker(name: str) -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.01)  # cleanup that takes a moment: stop waits for it
            cleaned.append(name)

    done = asyncio.create_task(asyncio.sleep(0))
    await done
    tasks = [asyncio.create_task(worker(n)) for n in ("a", "b")]
    await asyncio.sleep(0)
    await cancel_and_wait(tasks[0], None, done, tasks[1])
    assert cleaned == ["a", "b"] and all(t.cancelled() for t in tasks)


async def test_a_task_may_stop_its_own_owner() -> None:
    finished = asyncio.Event()

    async def stops_itself() -> None:
        await cancel_and_wait(asyncio.current_task())  # as a delivery worker on a fatal error
        finished.set()

    task = asyncio.create_task(stops_itself())
    await task
    assert finished.is_set() and not task.cancelled()


async def test_the_callers_own_cancellation_is_not_swallowed() -> None:
    async def stubborn() -> None:
        while True:  # takes several cancels to stop: the stopper waits on it
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                await asyncio.sleep(0.05)

    target = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(target))
    await asyncio.sleep(0.01)
    stopper.cancel()  # a shutdown deadline cancels the stop itself
    with pytest.raises(asyncio.CancelledError):
        await stopper
    target.cancel()
    await asyncio.sleep(0.1)


async def test_an_exception_a_task_ended_with_is_raised() -> None:
    async def fails() -> None:
        raise ValueError("bug in the loop")

    async def fails_to_stop() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("cleanup failed")

    crashed = asyncio.create_task(fails())
    stopping = asyncio.create_task(fails_to_stop())
    await asyncio.sleep(0)
    with pytest.raises(ValueError, match="bug in the loop"):
        await cancel_and_wait(crashed)
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_and_wait(stopping)
