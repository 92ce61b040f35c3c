"""The per-user limit on creating jobs: 429 with Retry-After once a user's allowance is spent."""

from __future__ import annotations

import math

from redis.asyncio import Redis

from gateway.problems import problem
from shared.ratelimit import Gcra, RateLimit
from shared.streams import user_job_rate


def retry_after_s(wait_s: float) -> int:
    """The Retry-After header's whole seconds for a wait: rounded up, never 0 (which would
    invite an immediate retry that is refused again)."""
    return max(1, math.ceil(wait_s))


class JobRateLimiter:
    """Counts each job a user creates against one limit, across queues and gateway instances."""

    def __init__(self, redis: Redis, limit: RateLimit | None) -> None:
        self._gcra = Gcra(redis)
        self._limit = limit

    @property
    def limit(self) -> RateLimit | None:
        """The limit in force; None when job creation is not limited."""
        return self._limit

    def use(self, limit: RateLimit | None) -> None:
        """Enforce `limit` from now on (None: no limit), as the runtime setting changes.

        Each user's state in Redis is the time their allowance is full again, so what they
        spent carries over, and a raised rate never makes anyone wait longer than a full burst
        at the new rate.
        """
        self._limit = limit

    async def admit(self, sub: str, jobs: int = 1) -> None:
        """Count `jobs` new jobs of user `sub`, or count none and raise a problem: 429 with
        Retry-After while the allowance refills, 422 for more jobs than the burst ever allows."""
        limit = self._limit
        if jobs < 1 or limit is None:
            return
        if jobs > limit.burst:
            raise problem(
                422,
                f"{jobs} jobs at once exceed the {limit.burst} a user may create at once",
                slug="over-burst",
                burst=limit.burst,
            )
        wait_s = await self._gcra.try_spend({user_job_rate(sub): limit}, jobs)
        if wait_s > 0:
            after_s = retry_after_s(wait_s)
            raise problem(
                429,
                f"too many new jobs: at most {limit.per_s:g} a second, "
                f"{limit.burst} at once; retry in {after_s} s",
                headers={"Retry-After": str(after_s)},
                retry_after_s=after_s,
            )
