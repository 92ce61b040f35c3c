"""Leases, reclaiming and hand-back against a real Redis: a dead worker's job is run again once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, cast

import msgspec
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.jobs import JobEnvelope
from shared.jobstore import JobStore, StartOutcome
from shared.streams import WORKER_GROUP, Lane, QueueKeys
from tests.streams import read_group
from worker.app import create_registry
from worker.reclaim import LeaseKeeper, Reclaimer
from worker.retry import RetryPolicy
from worker.runner import JobRunner

KEYS = QueueKeys("default")
LANE = Lane("default")


def runner_for(store: JobStore, consumer: str, max_deliveries: int = 5) -> JobRunner:
    return JobRunner(
        store,
        create_registry(),
        RetryPolicy(schedule_s=(0.0,)),
        consumer=consumer,
        max_deliveries=max_deliveries,
    )


async def enqueue_echo(store: JobStore) -> JobEnvelope:
    envelope = JobEnvelope(
        id=str(uuid.uuid4()),
        type="demo.echo",
        queue="default",
        owner="alice",
        max_attempts=3,
        enqueued_at_ms=now_ms(),
        payload=msgspec.Raw(b'{"text":"hi"}'),
    )
    await store.enqueue(envelope)
    return envelope


async def pending_of(redis: Redis, entry: str) -> tuple[str, int, int]:
    """(owner, idle ms, deliveries) of one pending entry."""
    [row] = cast(
        "list[dict[str, Any]]",
        await redis.xpending_range(KEYS.stream, WORKER_GROUP, entry, entry, 1),
    )
    return row["consumer"].decode(), int(row["time_since_delivered"]), int(row["times_delivered"])


async def state_of(store: JobStore, job_id: str) -> str:
    view = await store.get(["default"], job_id)
    assert view is not None
    return view.state


async def test_the_old_holder_does_not_start_an_entry_another_worker_reclaimed(
    redis: Redis, store: JobStore
) -> None:
    envelope = await enqueue_echo(store)
    [(entry, data)] = await read_group(redis, KEYS.stream, "a")
    await store.reclaim(LANE, "b", min_idle_ms=0, count=10)

    await runner_for(store, "a").run(LANE, entry, data)

    assert await state_of(store, envelope.id) == "queued"
    owner, _idle, _deliveries = await pending_of(redis, entry)
    assert owner == "b"
    outcome = await store.start(envelope, "t", now_ms(), entry_id=entry, consumer="a")
    assert outcome is StartOutcome.NOT_OURS


async def test_a_reclaimer_runs_a_dead_workers_job_to_completion(
    redis: Redis, store: JobStore
) -> None:
    envelope = await enqueue_echo(store)
    [(entry, _data)] = await read_group(redis, KEYS.stream, "dead-worker")
    reclaimer = Reclaimer(
        store,
        runner_for(store, "alive"),
        [LANE],
        consumer="alive",
        visibility_timeout_s=0.05,
        interval_s=0.05,
        concurrency=4,
    )

    running = asyncio.create_task(reclaimer.run())
    for _ in range(100):
        if await state_of(store, envelope.id) == "completed":
            break
        await asyncio.sleep(0.02)
    reclaimer.stop_intake()
    await asyncio.wait_for(running, 5)

    assert await state_of(store, envelope.id) == "completed"
    assert await redis.xpending_range(KEYS.stream, WORKER_GROUP, "-", "+", 10) == []
    assert entry not in {e for e, _ in await read_group(redis, KEYS.stream, "alive")}


async def test_a_job_that_kills_its_worker_every_time_is_dead_lettered_as_poison(
    redis: Redis, store: JobStore
) -> None:
    envelope = await enqueue_echo(store)
    [(entry, _data)] = await read_group(redis, KEYS.stream, "w1")
    # Two more workers take it over and "die" too: three deliveries.
    await store.reclaim(LANE, "w2", min_idle_ms=0, count=1)
    [taken] = await store.reclaim(LANE, "w3", min_idle_ms=0, count=1)
    assert (taken.entry_id, taken.deliveries) == (entry, 3)

    await runner_for(store, "w3", max_deliveries=2).run(
        LANE, taken.entry_id, taken.data, taken.deliveries
    )

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.state == "dead"
    assert "stopped its worker 2 times" in view.errors[-1].message
    assert await redis.xlen(KEYS.dead) == 1


async def test_leases_of_jobs_in_hand_are_renewed_and_nobody_elses(
    redis: Redis, store: JobStore
) -> None:
    await enqueue_echo(store)
    await enqueue_echo(store)
    [(mine, _), (theirs, _)] = await read_group(redis, KEYS.stream, "a")
    await store.reclaim(LANE, "b", min_idle_ms=0, count=10)
    # "a" holds nothing now; give one entry back to it to hold.
    await redis.xclaim(KEYS.stream, WORKER_GROUP, "a", 0, [mine], justid=True)
    await asyncio.sleep(0.2)

    renewed = await store.renew(LANE, "a", [mine, theirs])

    assert renewed == 1
    owner, idle, _ = await pending_of(redis, mine)
    assert (owner, idle < 150) == ("a", True)
    owner, idle, _ = await pending_of(redis, theirs)
    assert (owner, idle >= 150) == ("b", True)


async def test_the_lease_keeper_renews_what_the_runner_holds(store: JobStore, redis: Redis) -> None:
    await enqueue_echo(store)
    [(entry, _)] = await read_group(redis, KEYS.stream, "a")
    runner = runner_for(store, "a")
    keeper = LeaseKeeper(store, runner, [LANE], consumer="a", visibility_timeout_s=0.15)
    runner._in_hand[LANE] = {entry}

    renewing = asyncio.create_task(keeper.run())
    await asyncio.sleep(0.4)
    renewing.cancel()

    _owner, idle, deliveries = await pending_of(redis, entry)
    assert idle < 150
    assert deliveries == 1


async def test_hand_back_makes_entries_claimable_at_once_without_counting_a_delivery(
    redis: Redis, store: JobStore
) -> None:
    await enqueue_echo(store)
    [(entry, _)] = await read_group(redis, KEYS.stream, "leaving")

    assert await store.hand_back(LANE, "leaving") == 1
    # Whatever visibility timeout the other workers run with.
    [taken] = await store.reclaim(LANE, "staying", min_idle_ms=86_400_000, count=10)

    assert taken.entry_id == entry
    # A graceful hand-back is no crash: the delivery to "leaving" is not counted towards the
    # poison limit, so the entry counts as delivered once, to "staying".
    assert taken.deliveries == 1
