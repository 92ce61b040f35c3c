"""Starts and completions that come together go to Redis in one script call, each fenced alone."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from shared.clock import now_ms
from shared.jobstore import JobStore, StartOutcome
from shared.streams import QueueKeys
from tests.envelopes import job_envelope
from tests.streams import pending_count, read_group

KEYS = QueueKeys("default")


async def test_a_batch_completes_the_current_attempts_and_refuses_only_the_stale_one(
    redis: Redis, store: JobStore
) -> None:
    envelopes = [job_envelope() for _ in range(3)]
    for envelope in envelopes:
        await store.enqueue(envelope)
    entries = [entry for entry, _ in await read_group(redis, KEYS.stream, "w")]
    starts = await asyncio.gather(
        *(
            store.start(envelope, f"token-{n}", now_ms(), entry_id=entry, consumer="w")
            for n, (envelope, entry) in enumerate(zip(envelopes, entries, strict=True))
        )
    )
    assert starts == [StartOutcome.STARTED] * 3
    await redis.config_resetstat()

    # The second job's attempt was taken over meanwhile: its old token no longer holds.
    outcomes = await asyncio.gather(
        *(
            store.complete(envelope, "stale" if n == 1 else f"token-{n}", entry, n, now_ms())
            for n, (envelope, entry) in enumerate(zip(envelopes, entries, strict=True))
        )
    )

    assert outcomes == [True, False, True]
    stats = await redis.info("commandstats")
    # One script run: a first call may fail with NOSCRIPT before redis-py loads the script.
    evalsha = stats["cmdstat_evalsha"]
    assert evalsha["calls"] - evalsha["failed_calls"] == 1
    states = [await redis.hget(KEYS.job(envelope.id), "state") for envelope in envelopes]
    assert states == [b"completed", b"active", b"completed"]
    assert await pending_count(redis, KEYS.stream) == 1


async def test_a_batch_starts_only_the_entries_this_consumer_still_holds(
    redis: Redis, store: JobStore
) -> None:
    envelopes = [job_envelope() for _ in range(2)]
    for envelope in envelopes:
        await store.enqueue(envelope)
    entries = [entry for entry, _ in await read_group(redis, KEYS.stream, "w")]

    outcomes = list(
        await asyncio.gather(
            store.start(envelopes[0], "t0", now_ms(), entry_id=entries[0], consumer="w"),
            # Not this consumer's entry: another worker holds it.
            store.start(envelopes[1], "t1", now_ms(), entry_id=entries[1], consumer="other"),
        )
    )

    assert outcomes == [StartOutcome.STARTED, StartOutcome.NOT_OURS]
    assert await redis.hget(KEYS.job(envelopes[1].id), "state") == b"queued"
