"""Stopping background tasks the same careful way everywhere."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` and wait until each has finished.

    ``None`` and the calling task itself are skipped (a task that stops its own owner returns by
    itself). Only the cancellation asked for here is swallowed: when the caller is itself cancelled
    while it waits, that cancellation goes on up, so a ``stop()`` can always be interrupted. An
    exception a task ended with (before or while stopping) is raised here, as awaiting it would.
    """
    current = asyncio.current_task()
    pending = [task for task in tasks if task is not None and task is not current]
    for task in pending:
        task.cancel()
    for task in pending:
        try:
            await task
        except asyncio.CancelledError:
            if current is not None and current.cancelling():
                raise
