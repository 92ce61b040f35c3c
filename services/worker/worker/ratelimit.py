"""Rate limits per queue and per job type, shared by every worker process and enforced in Redis.

Each limit is a GCRA cell of shared.ratelimit. A start checks the queue-wide limit (`*`) and its
type's limit in one script call and spends from both only when both allow it. A type's limit is
counted per queue: its key carries the queue's hash tag, which keeps the script on one cluster
slot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from redis.asyncio import Redis

from shared.ratelimit import Gcra, RateLimit
from shared.streams import QueueKeys

QUEUE_WIDE = "*"


class _Gate:
    """The limits one start must pass, by their keys, and a line to wait in."""

    def __init__(self, keys: QueueKeys, limits: Mapping[str, RateLimit]) -> None:
        self.limits = {keys.rate(name): limit for name, limit in limits.items()}
        self.turn = asyncio.Lock()


class RateLimiter:
    """Holds back starts of one queue's jobs to that queue's limits, counted for all workers."""

    def __init__(self, redis: Redis, queue: str, limits: Mapping[str, RateLimit]) -> None:
        self._gcra = Gcra(redis)
        keys = QueueKeys(queue)
        queue_wide = {name: limit for name, limit in limits.items() if name == QUEUE_WIDE}
        self._any_type = _Gate(keys, queue_wide) if queue_wide else None
        self._by_type = {
            name: _Gate(keys, {**queue_wide, name: limit})
            for name, limit in limits.items()
            if name != QUEUE_WIDE
        }

    async def acquire(self, job_type: str) -> None:
        """Return once a job of `job_type` may start, counting that start against its limits."""
        gate = self._by_type.get(job_type, self._any_type)
        if gate is None:
            return
        # This process's tasks take turns, first come first served: only the first asks Redis,
        # instead of all of them waking for the same free start and asking together.
        async with gate.turn:
            wait_s = await self._gcra.try_spend(gate.limits)
            while wait_s > 0:
                await asyncio.sleep(wait_s)
                wait_s = await self._gcra.try_spend(gate.limits)

    async def try_acquire(self, job_type: str) -> float:
        """Count a start now if the limits allow it and return 0.0; else the seconds to wait."""
        gate = self._by_type.get(job_type, self._any_type)
        return 0.0 if gate is None else await self._gcra.try_spend(gate.limits)
