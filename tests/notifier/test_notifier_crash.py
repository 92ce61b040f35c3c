"""Two `python -m notifier` processes storing notifications; one is killed (SIGKILL) mid-stream."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from devstack.ports import free_port
from devstack.services import SERVICES, ServiceProcess, service_environment, terminate_all
from shared.db.session import create_engine
from shared.settings import DatabaseSettings
from tests.notifier.wire import completed, publish, until

EVENTS = 600
NOTIFIER = next(spec for spec in SERVICES if spec.name == "notifier")


@pytest.fixture
def notifiers(
    tmp_path: Path, redis_url: str, database_url: str, jwt_secret: str
) -> Iterator[list[ServiceProcess]]:
    """Two notifier processes on the test Redis and database, claiming stale entries after 1 s."""
    processes = []
    for number in range(2):
        port = free_port()
        env = service_environment(
            NOTIFIER,
            {"notifier": port},
            redis_url=redis_url,
            database_url=database_url,
            jwt_secret=jwt_secret,
        )
        env |= {"NOTIFIER_PERSIST_CLAIM_IDLE_MS": "1000", "NOTIFIER_READ_COUNT": "20"}
        processes.append(
            ServiceProcess(NOTIFIER, port, env, log_path=tmp_path / f"notifier-{number}.log")
        )
    try:
        for process in processes:
            process.start()
        for process in processes:
            process.wait_ready()
        yield processes
    finally:
        terminate_all(processes)


@pytest.mark.slow
async def test_each_event_is_stored_once_when_one_of_two_notifiers_is_killed_mid_stream(
    notifiers: list[ServiceProcess], redis: Redis, database_url: str
) -> None:
    engine = create_engine(DatabaseSettings(url=database_url))

    async def counts() -> tuple[int, int]:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text("SELECT count(*), count(DISTINCT source_event) FROM notifications")
                )
            ).one()
        return int(row[0]), int(row[1])

    async def all_stored() -> bool:
        return (await counts())[0] >= EVENTS

    try:
        for number in range(EVENTS):
            await publish(redis, completed("user:alice", job_id=f"j{number}"))
            if number == EVENTS // 3:
                notifiers[0].kill()
            if number % 50 == 0:
                # Spread over time, so that the kill lands while both are storing.
                await asyncio.sleep(0.02)
        await until(all_stored, timeout_s=15)
        stored, distinct = await counts()
    finally:
        await engine.dispose()

    assert notifiers[0].returncode == -9
    assert (stored, distinct) == (EVENTS, EVENTS)
