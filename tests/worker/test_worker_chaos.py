"""Worker processes under faults: kill -9 mid-job, SIGTERM mid-job; nothing lost, nothing twice."""

from __future__ import annotations

import signal
import time
import uuid

import msgspec
import pytest
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.codec import event_decoder
from shared.contracts.jobs import JobEnvelope
from shared.jobstore import JobStore
from shared.streams import QueueKeys
from tests.streams import pending_count, stream_entries
from tests.waiting import wait_for
from tests.worker.conftest import SpawnWorker

pytestmark = pytest.mark.slow

KEYS = QueueKeys("default")


async def enqueue_sleep(store: JobStore, seconds: float) -> str:
    envelope = JobEnvelope(
        id=str(uuid.uuid4()),
        type="demo.sleep",
        queue="default",
        owner="alice",
        max_attempts=3,
        enqueued_at_ms=now_ms(),
        payload=msgspec.Raw(msgspec.json.encode({"seconds": seconds, "steps": 4})),
    )
    await store.enqueue(envelope)
    return envelope.id


async def event_counts(store: JobStore, redis_url: str, job_id: str) -> dict[str, int]:
    client = Redis.from_url(redis_url)
    try:
        entries = await stream_entries(client, KEYS.events)
    finally:
        await client.aclose()
    counts: dict[str, int] = {}
    for _id, data in entries:
        event = event_decoder.decode(data)
        if event.job_id == job_id:
            kind = msgspec.json.decode(msgspec.json.encode(event))["event"]
            counts[kind] = counts.get(kind, 0) + 1
    return counts


async def test_a_job_whose_worker_is_killed_completes_on_another_exactly_once(
    spawn_worker: SpawnWorker, store: JobStore, redis_url: str
) -> None:
    doomed = spawn_worker("doomed")
    job_id = await enqueue_sleep(store, 2.0)
    await wait_for(store, job_id, "active")

    doomed.kill()
    spawn_worker("survivor")

    view = await wait_for(store, job_id, "completed")
    assert view.result == {"slept_s": 2.0}
    counts = await event_counts(store, redis_url, job_id)
    assert counts["job.completed"] == 1
    assert counts["job.started"] == 2
    client = Redis.from_url(redis_url)
    try:
        assert await pending_count(client, KEYS.stream) == 0
    finally:
        await client.aclose()


async def test_sigterm_lets_the_job_in_hand_finish_and_exits_0(
    spawn_worker: SpawnWorker, store: JobStore, redis_url: str
) -> None:
    worker = spawn_worker("leaving", WORKER_GRACE_S="10")
    job_id = await enqueue_sleep(store, 1.5)
    await wait_for(store, job_id, "active")

    began = time.monotonic()
    worker.signal(signal.SIGTERM)

    assert worker.wait(timeout_s=12) == 0
    assert time.monotonic() - began < 10
    view = await store.get(["default"], job_id)
    assert view is not None
    assert view.state == "completed"
    assert (await event_counts(store, redis_url, job_id))["job.completed"] == 1


async def test_a_job_outlasting_the_grace_period_is_handed_back_and_run_by_another_at_once(
    spawn_worker: SpawnWorker, store: JobStore, redis_url: str
) -> None:
    leaving = spawn_worker("leaving", WORKER_GRACE_S="1")
    job_id = await enqueue_sleep(store, 4.0)
    await wait_for(store, job_id, "active")
    # The other worker would wait 60 s for a lease to lapse; a hand-back needs no waiting.
    spawn_worker("staying", WORKER_VISIBILITY_TIMEOUT_S="60")

    leaving.signal(signal.SIGTERM)

    assert leaving.wait(timeout_s=10) == 0
    view = await wait_for(store, job_id, "completed")
    assert view.result == {"slept_s": 4.0}
    assert (await event_counts(store, redis_url, job_id))["job.completed"] == 1


async def enqueue_echo(store: JobStore, *, due_in_ms: int = 0) -> str:
    now = now_ms()
    envelope = JobEnvelope(
        id=str(uuid.uuid4()),
        type="demo.echo",
        queue="default",
        owner="alice",
        max_attempts=1,
        enqueued_at_ms=now,
        due_at_ms=now + due_in_ms,
        payload=msgspec.Raw(b'{"text":"x"}'),
    )
    await store.enqueue(envelope)
    return envelope.id


async def test_a_rate_limit_holds_across_two_workers(
    spawn_worker: SpawnWorker, store: JobStore
) -> None:
    for name in ("first", "second"):
        spawn_worker(name, WORKER_RATE_LIMITS="demo.echo=5/s")
    job_ids = [await enqueue_echo(store) for _ in range(15)]

    starts = sorted(
        [(await wait_for(store, job_id, "completed")).started_at_ms or 0 for job_id in job_ids]
    )

    # 15 starts at 5/s, burst 1: the last is at least 14 intervals (2.8 s) after the first...
    assert starts[-1] - starts[0] >= 2_700
    # ...and no second holds more than its 5 starts plus the burst, whoever started them.
    for index, start in enumerate(starts):
        assert sum(1 for later in starts[index:] if later - start < 1_000) <= 6


async def test_a_delayed_job_runs_no_earlier_than_due_and_within_a_second_of_it(
    spawn_worker: SpawnWorker, store: JobStore
) -> None:
    spawn_worker("punctual")
    before = now_ms()
    job_id = await enqueue_echo(store, due_in_ms=1_500)

    view = await wait_for(store, job_id, "completed")

    assert view.started_at_ms is not None
    due = view.created_at_ms + 1_500
    assert before + 1_500 <= view.started_at_ms
    assert view.started_at_ms - due <= 1_000


async def test_a_worker_consumes_again_by_itself_after_redis_lost_its_data(
    spawn_worker: SpawnWorker, store: JobStore, redis_url: str
) -> None:
    spawn_worker("resilient")
    before = await enqueue_echo(store)
    await wait_for(store, before, "completed")
    client = Redis.from_url(redis_url)
    try:
        # Streams and consumer groups are gone, as after a restart without AOF.
        await client.flushall()
    finally:
        await client.aclose()

    after = await enqueue_echo(store)

    assert (await wait_for(store, after, "completed")).result == {"text": "x"}
