"""An open-loop load: requests fired on a fixed schedule, whether or not earlier ones returned.

A closed loop (send, wait, send) slows down with the system it measures and so hides its
queueing delay; a schedule does not.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

import msgspec

from benchmarks.figures import percentile

logger = logging.getLogger(__name__)


class OpenLoopStats(msgspec.Struct, frozen=True, kw_only=True):
    """How well the generator kept its schedule, and how many requests failed."""

    sent: int
    failed: int
    lag_p99_ms: float
    lag_max_ms: float


async def open_loop(
    rate_per_s: float, duration_s: float, fire: Callable[[int], Awaitable[None]]
) -> OpenLoopStats:
    """Call `fire(i)` at start + i / rate for `duration_s`, each call in its own task.

    Returns once every call has returned. A call that raises is counted and logged; the
    schedule goes on.
    """
    count = max(1, math.floor(rate_per_s * duration_s))
    loop = asyncio.get_running_loop()
    lags_ms: list[float] = []
    failures = 0

    async def guarded(index: int) -> None:
        nonlocal failures
        try:
            await fire(index)
        except Exception:
            failures += 1
            if failures == 1:
                logger.exception("request %d of the open-loop load failed", index)

    async with asyncio.TaskGroup() as tasks:
        start = loop.time()
        for index in range(count):
            due = start + index / rate_per_s
            wait_s = due - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
            lags_ms.append(max(0.0, loop.time() - due) * 1000)
            tasks.create_task(guarded(index))
    return OpenLoopStats(
        sent=count,
        failed=failures,
        lag_p99_ms=percentile(lags_ms, 99),
        lag_max_ms=max(lags_ms),
    )
