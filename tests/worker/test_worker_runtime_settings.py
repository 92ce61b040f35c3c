"""A running worker process applies runtime settings changed in PostgreSQL, without a restart."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.db.session import create_engine, create_sessionmaker
from shared.jobstore import JobStore
from shared.runtime.catalog import COMPLETED_TTL_S, RETRY_SCHEDULE_S
from shared.runtime.store import RuntimeSettingsStore
from shared.settings import DatabaseSettings
from shared.streams import QueueKeys
from tests.envelopes import job_envelope
from tests.waiting import wait_for
from tests.worker.conftest import SpawnWorker


async def completed_ttl_s(store: JobStore, redis: Redis) -> int:
    """Run an echo job through the worker; how long its record is kept."""
    echo = job_envelope("demo.echo", {"text": "hi"}, max_attempts=2)
    await store.enqueue(echo)
    await wait_for(store, echo.id, "completed")
    return int(await redis.ttl(QueueKeys("default").job(echo.id)))


async def test_a_new_retry_schedule_and_retention_apply_to_the_next_jobs(
    spawn_worker: SpawnWorker, redis: Redis, store: JobStore, database_url: str
) -> None:
    engine = create_engine(DatabaseSettings(url=database_url))
    settings = RuntimeSettingsStore(create_sessionmaker(engine), redis)
    try:
        # Started with a retry wait no test would sit through, and the default retention.
        spawn_worker("w1", DATABASE_URL=database_url, WORKER_RETRY_SCHEDULE_S="3600")
        assert await completed_ttl_s(store, redis) > 3600
        await settings.put(RETRY_SCHEDULE_S, [0.05], "root")
        await settings.put(COMPLETED_TTL_S, 120, "root")
        # Both come in the one reload that the last announcement causes: once the retention
        # shows, the schedule is in force too.
        for _ in range(50):
            if await completed_ttl_s(store, redis) <= 120:
                break
        else:
            raise AssertionError("the worker never applied jobs.completed_ttl_s = 120")

        failing = job_envelope("demo.fail", {"times": 1}, max_attempts=2)
        await store.enqueue(failing)
        done = await wait_for(store, failing.id, "completed")
    finally:
        await engine.dispose()

    # It failed once and was retried at once on the new schedule, not in an hour.
    assert done.attempt == 2
