"""The job pool: a consumer hands over a batch and reads on while its jobs run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from shared.contracts.commands import Echo, Sleep
from shared.jobstore import JobStore
from shared.streams import Lane, QueueKeys
from tests.envelopes import job_envelope
from tests.streams import read_group
from tests.waiting import wait_for
from worker.pool import JobPool
from worker.registry import JobContext, Registry
from worker.retry import RetryPolicy
from worker.runner import JobRunner

KEYS = QueueKeys("default")
LANE = Lane("default")


class Blocker:
    """`demo.sleep` jobs that run until released; `demo.echo` jobs that return at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.registry = Registry()
        self.registry.add("demo.sleep", self._block)
        self.registry.add("demo.echo", self._echo)

    async def _block(self, payload: Sleep, ctx: JobContext) -> None:
        await self.release.wait()

    async def _echo(self, payload: Echo, ctx: JobContext) -> Echo:
        return payload


@pytest.fixture
def blocker() -> Blocker:
    return Blocker()


@pytest.fixture
async def pool(store: JobStore, blocker: Blocker) -> AsyncIterator[JobPool]:
    """A pool with room for two jobs, running until the test ends."""
    runner = JobRunner(store, blocker.registry, RetryPolicy(), consumer="w", max_deliveries=5)
    job_pool = JobPool(runner, capacity=2)
    running = asyncio.create_task(job_pool.run())
    yield job_pool
    blocker.release.set()
    job_pool.close()
    await asyncio.wait_for(running, 10)


async def read_batch(redis: Redis) -> list[tuple[str, bytes]]:
    return await read_group(redis, KEYS.stream, "w")


async def test_a_slow_job_does_not_hold_up_the_jobs_read_after_it(
    redis: Redis, store: JobStore, pool: JobPool
) -> None:
    slow = job_envelope("demo.sleep", {"seconds": 1})
    await store.enqueue(slow)
    await pool.take(LANE, await read_batch(redis))
    await wait_for(store, slow.id, "active")

    quick = job_envelope("demo.echo")
    await store.enqueue(quick)
    await pool.take(LANE, await read_batch(redis))

    await wait_for(store, quick.id, "completed")
    view = await store.get(["default"], slow.id)
    assert view is not None
    assert view.state == "active"


async def test_a_full_pool_takes_the_next_batch_only_once_a_job_has_ended(
    redis: Redis, store: JobStore, pool: JobPool, blocker: Blocker
) -> None:
    slow = [job_envelope("demo.sleep", {"seconds": 1}) for _ in range(2)]
    for envelope in slow:
        await store.enqueue(envelope)
    taking = asyncio.ensure_future(pool.take(LANE, await read_batch(redis)))
    for envelope in slow:
        await wait_for(store, envelope.id, "active")
    assert not taking.done()

    blocker.release.set()

    await asyncio.wait_for(taking, 10)
    for envelope in slow:
        await wait_for(store, envelope.id, "completed")
