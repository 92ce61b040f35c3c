"""Rate limits per queue and per job type, shared by every worker process and enforced in Redis.

Each limit is a GCRA cell of shared.ratelimit. A start checks the queue-wide limit (`*`) and its
type's limit in one script call and spends from both only when both allow it. A type's limit is
counted per queue: its key carries the queue's hash tag, which keeps the script on one cluster
slot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

from redis.asyncio import Redis

from shared.ratelimit import Gcra, RateLimit
from shared.streams import QueueKeys

QUEUE_WIDE = "*"
_UNIT_S = {"s": 1, "m": 60, "h": 3600}
_ITEM = re.compile(
    r"(?P<name>[^\s=,]+)\s*=\s*(?P<count>\d+(?:\.\d+)?)/(?P<unit>[smh])(?::(?P<burst>\d+))?"
)
_FORMAT = "NAME=COUNT/UNIT[:BURST], UNIT one of s, m, h (e.g. 'demo.echo=10/s:5' or '*=100/m')"


def parse_rate_limits(text: str) -> dict[str, RateLimit]:
    """Read limits by job type, `*` for a whole queue, from e.g. `demo.echo=10/s:5,*=100/s`."""
    limits: dict[str, RateLimit] = {}
    if not text.strip():
        return limits
    for part in text.split(","):
        item = part.strip()
        match = _ITEM.fullmatch(item)
        if match is None:
            raise ValueError(f"rate limit {item!r} is not {_FORMAT}")
        name = match["name"]
        if name in limits:
            raise ValueError(f"rate limit {item!r}: {name!r} already has a limit")
        try:
            limits[name] = RateLimit(
                per_s=float(match["count"]) / _UNIT_S[match["unit"]],
                burst=int(match["burst"] or 1),
            )
        except ValueError as exc:
            raise ValueError(f"rate limit {item!r}: {exc}") from exc
    return limits


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
