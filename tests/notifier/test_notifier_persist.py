"""Durable notifications: one row per completed or dead-lettered event, however many notifiers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from devstack.ports import LOOPBACK, free_port
from notifier.persist import NOTIFICATION_GROUP, notification_of
from shared.contracts.jobs import SYSTEM_OWNER
from shared.db.session import create_engine
from shared.settings import DatabaseSettings
from shared.streams import QueueKeys
from tests.notifier.wire import completed, dead_lettered, publish, queued, until

StartNotifier = Callable[..., AbstractAsyncContextManager[str]]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(DatabaseSettings(url=database_url))
    try:
        yield engine
    finally:
        await engine.dispose()


async def rows(engine: AsyncEngine) -> list[tuple[str, str, str, str, str]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT source_event, user_id, kind, title, body FROM notifications ORDER BY id")
        )
        return [(r[0], r[1], r[2], r[3], r[4]) for r in result.all()]


async def wait_for_rows(engine: AsyncEngine, count: int) -> None:
    async def stored() -> bool:
        return len(await rows(engine)) >= count

    await until(stored)


async def pending(redis: Redis) -> int:
    """Entries of the default queue's events read for storing and not yet acknowledged."""
    summary = await redis.xpending(QueueKeys("default").events, NOTIFICATION_GROUP)
    return int(summary["pending"])


def stored_total(metrics: str) -> int:
    """The value of the stored-notifications counter in a /metrics text."""
    [line] = [
        line
        for line in metrics.splitlines()
        if line.startswith("conduit_notifier_notifications_stored_total ")
    ]
    return int(float(line.split()[1]))


def test_completed_job_makes_a_friendly_notification_for_its_owner() -> None:
    notification = notification_of(completed("user:alice", job_id="j1"), "default:5-0")

    assert notification is not None
    assert (notification.user_id, notification.kind, notification.source_event) == (
        "alice",
        "job.completed",
        "default:5-0",
    )
    assert notification.title == "Job demo.echo completed"
    assert notification.data == {
        "job_id": "j1",
        "type": "demo.echo",
        "queue": "default",
        "attempt": 1,
    }


def test_dead_lettered_job_notification_has_the_message_and_never_the_detail() -> None:
    event = dead_lettered("user:alice", detail="Traceback: secret internals")

    notification = notification_of(event, "default:6-0")

    assert notification is not None
    assert notification.body == "The job failed."
    assert "secret" not in repr(notification)


def test_other_events_and_system_jobs_make_no_notification() -> None:
    assert notification_of(queued("user:alice"), "default:1-0") is None
    system_job = completed("role:ADMIN", job_id="cron", owner=SYSTEM_OWNER)
    assert notification_of(system_job, "default:2-0") is None


async def test_each_completed_or_dead_lettered_event_is_stored_once(
    start_notifier: StartNotifier,
    redis_url: str,
    redis: Redis,
    database_url: str,
    engine: AsyncEngine,
) -> None:
    async with start_notifier(redis_url, database_url=database_url) as base_url:
        done = await publish(redis, completed("user:alice", job_id="j1"))
        await publish(redis, queued("user:alice", job_id="j2"))
        failed = await publish(redis, dead_lettered("user:alice", job_id="j3"))
        await wait_for_rows(engine, 2)
        async with httpx.AsyncClient(base_url=base_url) as http:
            metrics = (await http.get("/metrics")).text

    assert await rows(engine) == [
        (
            f"default:{done}",
            "alice",
            "job.completed",
            "Job demo.echo completed",
            "Your job j1 finished.",
        ),
        (
            f"default:{failed}",
            "alice",
            "job.dead_lettered",
            "Job demo.fail failed",
            "The job failed.",
        ),
    ]
    assert "conduit_notifier_notifications_stored_total 2.0" in metrics


async def test_events_written_before_any_notifier_ran_are_stored(
    start_notifier: StartNotifier,
    redis_url: str,
    redis: Redis,
    database_url: str,
    engine: AsyncEngine,
) -> None:
    await publish(redis, completed("user:alice", job_id="early"))

    async with start_notifier(redis_url, database_url=database_url):
        await wait_for_rows(engine, 1)

    assert [row[4] for row in await rows(engine)] == ["Your job early finished."]


async def test_two_notifiers_store_each_event_once_and_share_the_work(
    start_notifier: StartNotifier,
    redis_url: str,
    redis: Redis,
    database_url: str,
    engine: AsyncEngine,
) -> None:
    events = 300
    async with (
        start_notifier(redis_url, database_url=database_url, read_count=10) as first,
        start_notifier(redis_url, database_url=database_url, read_count=10) as second,
    ):
        for number in range(events):
            await publish(
                redis, completed(f"user:u{number % 7}", job_id=f"j{number}", owner=f"u{number % 7}")
            )
        await wait_for_rows(engine, events)
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient() as http:
            stored = [(await http.get(f"{url}/metrics")).text for url in (first, second)]

    stored_rows = await rows(engine)
    assert len(stored_rows) == events
    assert len({row[0] for row in stored_rows}) == events
    # The group hands each entry to one of them: both stored some, none twice.
    counts = [stored_total(text) for text in stored]
    assert sum(counts) == events
    assert all(count > 0 for count in counts)


async def test_events_a_notifier_read_but_never_stored_are_stored_by_another(
    start_notifier: StartNotifier,
    redis_url: str,
    redis: Redis,
    database_url: str,
    engine: AsyncEngine,
) -> None:
    unreachable = f"postgresql+asyncpg://nobody@{LOOPBACK}:{free_port()}/nowhere"
    # Written first, so that the stuck notifier takes all of them in its first batch.
    for number in range(5):
        await publish(redis, completed("user:alice", job_id=f"j{number}"))
    async with (
        start_notifier(redis_url, database_url=unreachable, persist_claim_idle_ms=500) as stuck_url,
        httpx.AsyncClient(base_url=stuck_url) as http,
    ):

        async def holds_all() -> bool:
            return await pending(redis) == 5

        async def warns() -> bool:
            return bool((await http.get("/readyz")).json()["status"] == "warn")

        await until(holds_all)
        await until(warns)
        readyz = await http.get("/readyz")
    # The stuck notifier is gone with its entries unstored, as if it had crashed mid-write.

    async with start_notifier(redis_url, database_url=database_url, persist_claim_idle_ms=500):
        await wait_for_rows(engine, 5)

        async def all_acknowledged() -> bool:
            return await pending(redis) == 0

        await until(all_acknowledged)

    assert readyz.status_code == 200
    assert "storing fails" in readyz.json()["notifications"]
    assert len(await rows(engine)) == 5
