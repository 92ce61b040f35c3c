"""Rate limits: the setting's parser, and the shared GCRA limiter against a real Redis."""

from __future__ import annotations

import asyncio
import math
import time
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from devstack.ports import free_port
from shared.ratelimit import RateLimit, parse_rate_limits
from shared.streams import QueueKeys
from worker.ratelimit import RateLimiter

UNIT_S = {"s": 1, "m": 60, "h": 3600}

names = st.one_of(st.just("*"), st.from_regex(r"[A-Za-z0-9_.:\-]{1,24}", fullmatch=True))
limit_parts = st.tuples(
    st.integers(min_value=1, max_value=10_000),
    st.sampled_from(sorted(UNIT_S)),
    st.none() | st.integers(min_value=1, max_value=1000),
)


def test_a_setting_names_limits_per_type_and_for_the_whole_queue() -> None:
    assert parse_rate_limits("demo.echo=10/s,*=100/s") == {
        "demo.echo": RateLimit(per_s=10.0),
        "*": RateLimit(per_s=100.0),
    }
    assert parse_rate_limits("demo.echo=10/s:5") == {"demo.echo": RateLimit(per_s=10.0, burst=5)}
    assert parse_rate_limits(" mail.send = 120/m , geo.lookup=0.5/s ") == {
        "mail.send": RateLimit(per_s=2.0),
        "geo.lookup": RateLimit(per_s=0.5),
    }


@pytest.mark.parametrize("text", ["", "   "])
def test_an_empty_setting_limits_nothing(text: str) -> None:
    assert parse_rate_limits(text) == {}


@given(st.dictionaries(names, limit_parts, min_size=1, max_size=6))
def test_every_well_formed_setting_reads_back_as_written(
    written: dict[str, tuple[int, str, int | None]],
) -> None:
    text = ",".join(
        f"{name}={count}/{unit}" + (f":{burst}" if burst else "")
        for name, (count, unit, burst) in written.items()
    )
    assert parse_rate_limits(text) == {
        name: RateLimit(per_s=count / UNIT_S[unit], burst=burst or 1)
        for name, (count, unit, burst) in written.items()
    }


@given(st.text(max_size=60))
def test_any_setting_either_parses_or_fails_with_a_value_error(text: str) -> None:
    try:
        limits = parse_rate_limits(text)
    except ValueError:
        return
    assert all(isinstance(limit, RateLimit) for limit in limits.values())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("demo.echo", "is not NAME=COUNT/UNIT"),
        ("demo.echo=10", "is not NAME=COUNT/UNIT"),
        ("demo.echo=10/d", "is not NAME=COUNT/UNIT"),
        ("demo.echo=-1/s", "is not NAME=COUNT/UNIT"),
        ("demo.echo=10/s:1.5", "is not NAME=COUNT/UNIT"),
        ("=10/s", "is not NAME=COUNT/UNIT"),
        ("demo.echo=10/s,", "'' is not NAME=COUNT/UNIT"),
        ("a=1/s,a=2/s", "'a' already has a limit"),
        ("demo.echo=0/s", "per_s must be between"),
        ("demo.echo=1000000/s", "per_s must be between"),
        ("demo.echo=10/s:0", "burst must be between"),
    ],
)
def test_a_malformed_setting_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match="rate limit") as raised:
        parse_rate_limits(text)
    assert reason in str(raised.value)


@pytest.mark.parametrize(
    ("per_s", "burst"), [(0.0, 1), (-1.0, 1), (math.nan, 1), (math.inf, 1), (1.0, 0)]
)
def test_a_limit_that_cannot_be_enforced_is_refused(per_s: float, burst: int) -> None:
    with pytest.raises(ValueError, match="must be between"):
        RateLimit(per_s=per_s, burst=burst)


@pytest.fixture
def queue() -> str:
    return f"rl-{uuid.uuid4().hex[:8]}"


def busiest_second(starts: list[float]) -> int:
    """The most starts in any window [t, t + 1 s)."""
    ordered = sorted(starts)
    return max(sum(1 for s in ordered if t <= s < t + 1.0) for t in ordered)


async def test_two_workers_together_start_no_faster_than_their_shared_limit(
    redis_url: str, queue: str
) -> None:
    limits = {"api.call": RateLimit(per_s=20, burst=1)}
    clients = [Redis.from_url(redis_url) for _ in range(2)]
    starts: list[float] = []

    async def start_jobs(limiter: RateLimiter, count: int) -> None:
        for _ in range(count):
            await limiter.acquire("api.call")
            starts.append(time.monotonic())

    try:
        limiters = [RateLimiter(client, queue, limits) for client in clients]
        began = time.monotonic()
        # Four concurrent slots per worker, five starts each: 40 starts in all.
        async with asyncio.TaskGroup() as tasks:
            for limiter in limiters:
                for _ in range(4):
                    tasks.create_task(start_jobs(limiter, 5))
    finally:
        for client in clients:
            await client.aclose()

    assert len(starts) == 40
    # 39 intervals of 50 ms after the first start, which the empty cell allows at once.
    assert max(starts) - began >= 1.9
    # Exact spacing allows 20 in a second; one more absorbs the clients' timestamp jitter.
    assert busiest_second(starts) <= 20 + 1


async def test_a_burst_starts_at_once_then_starts_are_spaced_by_the_rate(
    redis: Redis, queue: str
) -> None:
    limiter = RateLimiter(redis, queue, {"api.call": RateLimit(per_s=10, burst=3)})

    assert [await limiter.try_acquire("api.call") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait_s = await limiter.try_acquire("api.call")

    assert 0.05 < wait_s <= 0.1


async def test_a_refused_type_limit_spends_nothing_of_the_queue_wide_limit(
    redis: Redis, queue: str
) -> None:
    limiter = RateLimiter(
        redis,
        queue,
        {"*": RateLimit(per_s=0.1, burst=2), "slow": RateLimit(per_s=0.01, burst=1)},
    )
    assert await limiter.try_acquire("slow") == 0.0
    queue_wide_before = await redis.get(QueueKeys(queue).rate("*"))

    refusals = [await limiter.try_acquire("slow") for _ in range(5)]

    assert all(90 < wait_s <= 100 for wait_s in refusals)
    assert await redis.get(QueueKeys(queue).rate("*")) == queue_wide_before
    # The queue-wide burst of 2 still has the start the refusals did not take.
    assert await limiter.try_acquire("fast") == 0.0
    assert 0 < await limiter.try_acquire("fast") <= 10
    # Both limits refuse now: the wait is the longer one, the type's 100 s interval.
    assert 90 < await limiter.try_acquire("slow") <= 100


async def test_a_type_without_any_limit_starts_without_asking_redis() -> None:
    nowhere = Redis(port=free_port(), retry=Retry(NoBackoff(), 0))
    try:
        limiter = RateLimiter(nowhere, "default", {"api.call": RateLimit(per_s=1)})

        await asyncio.wait_for(limiter.acquire("demo.echo"), timeout=1)
        assert await limiter.try_acquire("demo.echo") == 0.0
        with pytest.raises(RedisConnectionError):
            await limiter.acquire("api.call")
    finally:
        await nowhere.aclose()
