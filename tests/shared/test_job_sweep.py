"""The sweep and the counters the finishing scripts keep, on a real Redis."""

from __future__ import annotations

import uuid

import msgspec
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.jobs import JobEnvelope
from shared.jobstore import COUNTED_MINUTES, SWEEP_AHEAD_MS, JobStore, StartOutcome, StoreSettings
from shared.streams import Lane, QueueKeys
from tests.streams import read_group

KEYS = QueueKeys("default")


async def finish_one(redis: Redis, store: JobStore) -> JobEnvelope:
    """Enqueue a job, read it as worker `t` does and complete it."""
    envelope = JobEnvelope(
        id=str(uuid.uuid4()),
        type="demo.echo",
        queue="default",
        owner="alice",
        max_attempts=1,
        enqueued_at_ms=now_ms(),
        payload=msgspec.Raw(b"{}"),
    )
    await store.ensure_group(Lane("default"))
    await store.enqueue(envelope)
    [(entry_id, _)] = await read_group(redis, KEYS.stream, "t")
    started = await store.start(envelope, "token", now_ms(), entry_id=entry_id, consumer="t")
    assert started is StartOutcome.STARTED
    assert await store.complete(envelope, "token", entry_id, {"ok": True}, now_ms())
    return envelope


async def test_a_completed_job_is_counted_and_swept_from_the_indexes_as_it_expires(
    redis: Redis,
) -> None:
    store = JobStore(redis, StoreSettings(completed_ttl_s=3600))
    envelope = await finish_one(redis, store)
    minute = now_ms() // 60_000
    counts = await redis.hgetall(KEYS.counts)
    assert counts[b"completed"] == b"1"
    assert counts[f"completed:{minute}".encode()] == b"1"
    expires_at = await redis.zscore(KEYS.expiring, envelope.id)
    assert expires_at is not None

    early = await store.sweep("default", int(expires_at) - SWEEP_AHEAD_MS - 1)
    due = await store.sweep("default", int(expires_at) - SWEEP_AHEAD_MS)

    assert (early, due) == (0, 1)
    assert await redis.zscore(KEYS.jobs, envelope.id) is None
    assert await redis.zscore(KEYS.owner_jobs("alice"), envelope.id) is None
    assert await redis.zcard(KEYS.expiring) == 0
    # The record itself stays readable until Redis expires it.
    assert await redis.exists(KEYS.job(envelope.id)) == 1


async def test_the_sweep_drops_per_minute_counters_past_the_kept_window(redis: Redis) -> None:
    store = JobStore(redis)
    await finish_one(redis, store)
    later = now_ms() + (COUNTED_MINUTES + 1) * 60_000

    await store.sweep("default", later)

    assert await redis.hgetall(KEYS.counts) == {b"completed": b"1"}
