"""Repeatable jobs: the due tick (pure, property-tested), validation, one job per tick in Redis."""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from typing import cast

import msgspec
import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from devstack.servers import RedisServer
from shared.clock import now_ms
from shared.contracts.codec import envelope_decoder
from shared.contracts.jobs import JobEnvelope
from shared.contracts.repeatables import Repeatable
from shared.jobstore import JobStore
from shared.repeatables import (
    InvalidRepeatableError,
    RepeatableStore,
    check_cron,
    check_repeatable,
)
from shared.streams import Lane, QueueKeys
from tests.streams import stream_entries
from worker.repeat import RepeatScheduler, due_tick, idempotency_key, latest_tick

KEYS = QueueKeys("default")
LANE = Lane("default")
QUEUES = ("default",)
MINUTE_MS = 60_000
# Up to the year 2106; cron arithmetic beyond that is not ours to test.
instants = st.integers(min_value=0, max_value=2**32 * 1000)
CRONS = [
    "* * * * *",
    "*/7 * * * *",
    "0 3 * * *",
    "30 2 * * 1-5",
    "0 0 1 * *",
    "15 */6 * * *",
    "0 12 29 2 *",
    "5,10,50 8-17 * * 0,6",
]


def every(every_s: int, name: str = "tick") -> Repeatable:
    return Repeatable(
        name=name, type="demo.echo", payload={"text": name}, queue="default", every_s=every_s
    )


def cron(expression: str, name: str = "cron") -> Repeatable:
    return Repeatable(
        name=name, type="demo.echo", payload={"text": name}, queue="default", cron=expression
    )


def on_schedule(expression: str, at_ms: int) -> bool:
    return at_ms % 1000 == 0 and croniter.match(
        expression, datetime.fromtimestamp(at_ms / 1000, UTC)
    )


# The due tick, pure


@given(every_s=st.integers(min_value=1, max_value=7 * 86400), last=instants, now=instants)
def test_an_interval_fires_its_latest_tick_after_the_mark_or_nothing(
    every_s: int, last: int, now: int
) -> None:
    period = every_s * 1000
    tick = due_tick(every(every_s), last, now)

    latest = now // period * period
    if latest > last:
        assert tick == latest
        assert last < tick <= now < tick + period
    else:
        assert tick is None


@settings(max_examples=300)
@given(expression=st.sampled_from(CRONS), last=instants, now=instants)
def test_a_cron_fires_its_latest_tick_after_the_mark_or_nothing(
    expression: str, last: int, now: int
) -> None:
    tick = due_tick(cron(expression), last, now)

    latest = latest_tick(cron(expression), now)
    assert latest is not None
    assert on_schedule(expression, latest)
    assert latest <= now
    # No tick of the schedule lies between the latest and now.
    assert croniter(expression, latest / 1000).get_next(float) * 1000 > now
    assert tick == (latest if latest > last else None)


@settings(max_examples=300)
@given(
    minutes=st.sampled_from([1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30]),
    last=instants,
    now=instants,
)
def test_a_cron_every_n_minutes_ticks_like_the_same_interval(
    minutes: int, last: int, now: int
) -> None:
    assert due_tick(cron(f"*/{minutes} * * * *"), last, now) == due_tick(
        every(minutes * 60), last, now
    )


@settings(max_examples=200)
@given(last=instants, now=instants)
def test_hourly_and_daily_crons_tick_like_the_same_intervals_in_utc(last: int, now: int) -> None:
    assert due_tick(cron("0 * * * *"), last, now) == due_tick(every(3600), last, now)
    assert due_tick(cron("0 0 * * *"), last, now) == due_tick(every(86400), last, now)


@given(ticks=st.integers(min_value=1, max_value=10**7))
def test_a_tick_exactly_now_is_due_now(ticks: int) -> None:
    now = ticks * MINUTE_MS
    assert due_tick(every(60), now - 1, now) == now
    assert due_tick(cron("* * * * *"), now - 1, now) == now
    assert due_tick(cron("* * * * *"), now, now) is None


def test_ticks_missed_over_a_long_downtime_fire_once_as_the_latest() -> None:
    last = 1_700_000_000_000 - 1_700_000_000_000 % MINUTE_MS
    now = last + 90 * MINUTE_MS + 1234

    assert due_tick(every(60), last, now) == last + 90 * MINUTE_MS
    assert due_tick(every(60), last + 90 * MINUTE_MS, now) is None


# Validation


@pytest.mark.parametrize(
    "expression",
    ["* * * * * *", "@daily", "61 * * * *", "* * * *", "every day", "0 0 31 4 *", "* * * * 8"],
)
def test_a_cron_that_is_not_five_valid_fields_or_never_fires_is_refused(expression: str) -> None:
    with pytest.raises(InvalidRepeatableError):
        check_cron(expression)


@pytest.mark.parametrize("expression", ["0 3 * * *", "*/5 * * * 1-5", "0 0 29 2 *", "0 9 1 jan *"])
def test_a_five_field_cron_that_fires_is_accepted(expression: str) -> None:
    check_cron(expression)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"cron": "0 3 * * *", "every_s": 60}, "exactly one schedule"),
        ({"cron": None, "every_s": None}, "exactly one schedule"),
        ({"cron": "0 3 * * 9", "every_s": None}, "invalid cron"),
        ({"type": "demo.nope"}, "unknown job type"),
        ({"payload": {"txt": "x"}}, "invalid payload"),
        ({"queue": "elsewhere"}, "unknown queue"),
    ],
)
def test_a_definition_that_cannot_run_is_refused(changes: dict[str, object], says: str) -> None:
    fields: dict[str, object] = {
        "name": "x",
        "type": "demo.echo",
        "payload": {"text": "x"},
        "queue": "default",
        "every_s": 60,
    }
    definition = Repeatable(**(fields | changes))  # type: ignore[arg-type]

    with pytest.raises(InvalidRepeatableError, match=says):
        check_repeatable(definition, QUEUES)


async def test_a_scheduler_refuses_a_code_defined_job_that_cannot_run(redis: Redis) -> None:
    broken = Repeatable(name="bad", type="demo.nope", queue="default", every_s=60)

    with pytest.raises(InvalidRepeatableError, match="unknown job type"):
        RepeatScheduler(redis, JobStore(redis), QUEUES, [broken])


# Against Redis


class Clock:
    """A settable clock in ms, shared by schedulers that stand for workers."""

    def __init__(self, at_ms: int) -> None:
        self.at_ms = at_ms

    def __call__(self) -> int:
        return self.at_ms


async def queued_payloads(redis: Redis) -> list[bytes]:
    return [
        bytes(envelope_decoder.decode(data).payload)
        for _entry, data in await stream_entries(redis, KEYS.stream)
    ]


async def fired_ticks(redis: Redis, name: str) -> list[int]:
    """The ticks of `name` that became a job, from their idempotency keys."""
    pattern = KEYS.idempotency("system", idempotency_key(name, 0))[:-1] + "*"
    keys = cast("list[bytes]", await redis.keys(pattern))
    return sorted(int(key.rsplit(b":", 1)[1]) for key in keys)


async def test_two_workers_running_together_enqueue_each_tick_once(
    redis: Redis, store: JobStore
) -> None:
    definition = every(1, "heartbeat")
    workers = [
        RepeatScheduler(redis, store, QUEUES, [definition], interval_s=0.02) for _ in range(2)
    ]
    started_ms = now_ms()

    async with asyncio.TaskGroup() as group:
        running = [group.create_task(worker.run()) for worker in workers]
        await asyncio.sleep(2.5)
        for task in running:
            task.cancel()

    ticks = await fired_ticks(redis, "heartbeat")
    assert len(await stream_entries(redis, KEYS.stream)) == len(ticks)
    # Whole seconds after the definition was stored, none skipped, none doubled.
    assert 2 <= len(ticks) <= 3
    assert ticks == list(range(ticks[0], ticks[0] + 1000 * len(ticks), 1000))
    assert ticks[0] > started_ms


async def test_workers_racing_on_the_same_tick_make_one_job(redis: Redis, store: JobStore) -> None:
    clock = Clock(1_000 * MINUTE_MS)
    definition = every(60)
    workers = [RepeatScheduler(redis, store, QUEUES, [definition], clock=clock) for _ in range(5)]
    await workers[0].fire_due()

    for minute in range(1, 4):
        clock.at_ms = (1_000 + minute) * MINUTE_MS + 7
        created = await asyncio.gather(*(worker.fire_due() for worker in workers))
        assert sum(created) == 1

    assert len(await stream_entries(redis, KEYS.stream)) == 3


async def test_ticks_missed_while_every_worker_was_down_fire_once(
    redis: Redis, store: JobStore
) -> None:
    clock = Clock(1_000 * MINUTE_MS)
    await RepeatScheduler(redis, store, QUEUES, [every(60)], clock=clock).fire_due()

    clock.at_ms += 45 * MINUTE_MS + 500
    restarted = RepeatScheduler(redis, store, QUEUES, [every(60)], clock=clock)

    assert await restarted.fire_due() == 1
    assert await restarted.fire_due() == 0
    assert await fired_ticks(redis, "tick") == [1_045 * MINUTE_MS]


async def test_a_new_definition_does_not_fire_for_ticks_before_it_existed(
    redis: Redis, store: JobStore
) -> None:
    clock = Clock(1_000 * MINUTE_MS + 30_000)
    definitions = RepeatableStore(redis)
    assert await definitions.create(cron("* * * * *"), clock())
    scheduler = RepeatScheduler(redis, store, QUEUES, clock=clock)

    assert await scheduler.fire_due() == 0
    clock.at_ms = 1_001 * MINUTE_MS
    assert await scheduler.fire_due() == 1
    assert await queued_payloads(redis) == [b'{"text":"cron"}']


async def test_a_crash_between_enqueue_and_mark_does_not_fire_the_tick_twice(
    redis: Redis, store: JobStore
) -> None:
    clock = Clock(1_000 * MINUTE_MS)
    scheduler = RepeatScheduler(redis, store, QUEUES, [every(60)], clock=clock)
    await scheduler.fire_due()
    clock.at_ms = 1_001 * MINUTE_MS
    # Another worker enqueued this tick, then died before moving the mark.
    envelope = JobEnvelope(
        id=str(uuid.uuid4()),
        type="demo.echo",
        queue="default",
        owner="system",
        max_attempts=4,
        enqueued_at_ms=clock(),
        payload=msgspec.Raw(b'{"text":"tick"}'),
    )
    await store.enqueue(envelope, idempotency_key=idempotency_key("tick", 1_001 * MINUTE_MS))

    assert await scheduler.fire_due() == 0
    assert len(await stream_entries(redis, KEYS.stream)) == 1
    assert int(await redis.hget(KEYS.repeat_marks, "tick") or 0) == 1_001 * MINUTE_MS


async def test_a_deleted_definition_stops_firing_and_leaves_no_mark(
    redis: Redis, store: JobStore
) -> None:
    clock = Clock(1_000 * MINUTE_MS)
    definitions = RepeatableStore(redis)
    await definitions.create(every(60), clock())
    scheduler = RepeatScheduler(redis, store, QUEUES, clock=clock)

    assert await definitions.delete("default", "tick")
    clock.at_ms = 1_010 * MINUTE_MS

    assert await scheduler.fire_due() == 0
    assert not await definitions.advance("default", "tick", clock())
    assert await redis.exists(KEYS.repeat_marks) == 0


async def test_a_job_runs_as_its_definitions_owner_with_its_payload(
    redis: Redis, store: JobStore
) -> None:
    clock = Clock(1_000 * MINUTE_MS + 1)
    definition = Repeatable(
        name="report",
        type="demo.echo",
        payload={"text": "weekly"},
        queue="default",
        owner="admin-7",
        every_s=60,
        max_attempts=2,
    )
    await RepeatableStore(redis).create(definition, clock())
    clock.at_ms = 1_001 * MINUTE_MS

    assert await RepeatScheduler(redis, store, QUEUES, clock=clock).fire_due() == 1
    [(_entry, data)] = await stream_entries(redis, KEYS.stream)
    envelope = envelope_decoder.decode(data)
    assert (envelope.owner, envelope.type, envelope.max_attempts) == ("admin-7", "demo.echo", 2)
    assert bytes(envelope.payload) == b'{"text":"weekly"}'


async def test_the_loop_outlives_a_redis_outage_and_fires_after_it(
    redis: Redis, store: JobStore, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(1_000 * MINUTE_MS)
    scheduler = RepeatScheduler(redis, store, QUEUES, [every(60)], clock=clock, interval_s=0.05)

    with caplog.at_level(logging.WARNING, logger="worker.repeat"):
        async with asyncio.TaskGroup() as group:
            running = group.create_task(scheduler.run())
            await asyncio.sleep(0.2)
            await asyncio.to_thread(redis_server.stop)
            clock.at_ms = 1_001 * MINUTE_MS
            await asyncio.sleep(0.3)
            assert not running.done()
            await asyncio.to_thread(redis_server.start)
            await asyncio.sleep(0.5)
            running.cancel()

    assert "could not fire repeatable jobs" in caplog.text
    assert await fired_ticks(redis, "tick") == [1_001 * MINUTE_MS]
