"""The shared GCRA core against a real Redis: spending several units, and never a partial spend."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from devstack.ports import free_port
from shared.ratelimit import Gcra, RateLimit


async def test_a_cost_spends_that_many_units_of_the_burst_at_once(redis: Redis) -> None:
    gcra = Gcra(redis)
    limits = {"rl:a": RateLimit(per_s=10, burst=5)}

    assert await gcra.try_spend(limits, cost=3) == 0.0
    assert await gcra.try_spend(limits, cost=2) == 0.0
    wait_s = await gcra.try_spend(limits, cost=2)

    # Two more units: the burst is empty, so the second of them is due in two intervals.
    assert 0.1 < wait_s <= 0.2


async def test_a_cost_one_limit_refuses_spends_nothing_of_the_others(redis: Redis) -> None:
    gcra = Gcra(redis)
    roomy = RateLimit(per_s=1, burst=10)
    tight = RateLimit(per_s=1, burst=3)
    assert await gcra.try_spend({"rl:tight": tight}, cost=2) == 0.0
    roomy_before = await redis.get("rl:roomy")

    assert await gcra.try_spend({"rl:roomy": roomy, "rl:tight": tight}, cost=2) > 0

    assert await redis.get("rl:roomy") == roomy_before is None
    assert await gcra.try_spend({"rl:roomy": roomy}, cost=10) == 0.0


@pytest.mark.parametrize("cost", [0, 4])
async def test_a_cost_no_burst_could_ever_allow_is_refused_without_asking_redis(
    cost: int,
) -> None:
    nowhere = Redis(port=free_port())
    try:
        with pytest.raises(ValueError, match="cannot spend"):
            await Gcra(nowhere).try_spend({"rl:a": RateLimit(per_s=1, burst=3)}, cost=cost)
    finally:
        await nowhere.aclose()
