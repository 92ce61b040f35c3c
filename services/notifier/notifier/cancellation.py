"""Ending loops that talk to Redis when their task is cancelled."""

from __future__ import annotations

import asyncio


def stop_if_cancelled() -> None:
    """Raise CancelledError when the running task is being cancelled.

    redis-py (8.1, measured) can swallow a cancellation that lands inside a pipeline and return
    as if nothing happened; a loop that then goes on never ends, and holds up shutdown. Loops
    call this after their Redis calls.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
