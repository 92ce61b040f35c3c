"""Worker processes against a Redis that restarts under load, and memory under a steady load.

A job that got its 202 (here: `JobStore.enqueue` returned, as in the gateway) must end completed
or dead-lettered across Redis restarts with AOF on; and a steady stream of jobs must leave Redis
holding only what retention promises: no stream entries, a capped events stream, and finished job
records that expire.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import msgspec
import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

from devstack.servers import RedisServer
from shared.clock import now_ms
from shared.contracts.codec import event_decoder
from shared.contracts.jobs import FINISHED_STATES, JobEnvelope
from shared.jobstore import JobStore, StoreSettings
from shared.streams import QueueKeys, lanes_of
from tests.streams import pending_count, stream_entries
from tests.worker.conftest import SpawnWorker

pytestmark = pytest.mark.slow

QUEUE = "default"
KEYS = QueueKeys(QUEUE)
LANES = lanes_of([QUEUE])
# Generous: every Redis outage pauses the workers' reading for FastStream's 5 s error backoff.
FINISH_WAIT_S = 30.0
# XADD MAXLEN ~ trims whole stream nodes only, so a capped stream may run past its cap by at most
# one node (stream-node-max-entries, 100 by default).
TRIM_SLACK = 100


def envelope_of(job_type: str, payload: object, *, max_attempts: int = 3) -> JobEnvelope:
    """A new job as the gateway builds it: a fresh id per submission."""
    now = now_ms()
    return JobEnvelope(
        id=str(uuid.uuid4()),
        type=job_type,
        queue=QUEUE,
        owner="alice",
        max_attempts=max_attempts,
        enqueued_at_ms=now,
        due_at_ms=now,
        payload=msgspec.Raw(msgspec.json.encode(payload)),
    )


async def states_of(redis: Redis, job_ids: Sequence[str]) -> dict[str, str | None]:
    """Each job's state, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hget(KEYS.job(job_id), "state")
        found: list[bytes | None] = await pipe.execute()
    return {job_id: s.decode() if s else None for job_id, s in zip(job_ids, found, strict=True)}


async def wait_until_finished(redis: Redis, job_ids: Sequence[str]) -> dict[str, str | None]:
    """Every job's final state, once none is waiting or running any more."""
    deadline = time.monotonic() + FINISH_WAIT_S
    while True:
        states = await states_of(redis, job_ids)
        unfinished = {job_id: s for job_id, s in states.items() if s not in FINISHED_STATES}
        if not unfinished:
            return states
        assert time.monotonic() < deadline, (
            f"{len(unfinished)} jobs unfinished after {FINISH_WAIT_S} s, e.g. "
            f"{sorted(unfinished.items())[:5]}"
        )
        await asyncio.sleep(0.1)


async def wait_until_nothing_pending(redis: Redis) -> None:
    """Wait out entries left pending by a failed answer: a reclaim clears them within seconds."""
    deadline = time.monotonic() + 10.0
    while True:
        pending = {lane.stream: await pending_count(redis, lane.stream) for lane in LANES}
        if not any(pending.values()):
            return
        assert time.monotonic() < deadline, f"entries still pending: {pending}"
        await asyncio.sleep(0.1)


async def completions_per_job(redis: Redis) -> dict[str, int]:
    """How many `job.completed` events each job has on the events stream."""
    counts: dict[str, int] = {}
    for _id, data in await stream_entries(redis, KEYS.events):
        event = event_decoder.decode(data)
        if type(event).__struct_config__.tag == "job.completed":
            counts[event.job_id] = counts.get(event.job_id, 0) + 1
    return counts


async def submit_under_outages(
    store: JobStore, jobs: Sequence[tuple[str, object]], accepted: list[str]
) -> None:
    """Enqueue every job, a few at a time, as clients would; a refused one is submitted again.

    Only the ids whose enqueue returned count as accepted (they got their 202). A call that
    failed may still have stored its job; that job is not counted, as its client was told no.
    """
    for start in range(0, len(jobs), 10):
        for job_type, payload in jobs[start : start + 10]:
            while True:
                envelope = envelope_of(job_type, payload)
                try:
                    await store.enqueue(envelope)
                except (RedisError, OSError):
                    await asyncio.sleep(0.05)
                else:
                    accepted.append(envelope.id)
                    break
        await asyncio.sleep(0.08)


async def restart_while_running(
    server: RedisServer, redis: Redis, accepted: list[str], total: int
) -> None:
    """Restart Redis (SIGTERM flushes the AOF) at a fifth and at three fifths of jobs finished.

    Both times, jobs are queued and running. Each outage also stops every FastStream
    subscriber for its fixed 5 s error backoff, so a restart costs the workers seconds.
    """
    deadline = time.monotonic() + FINISH_WAIT_S
    for share in (0.2, 0.6):
        while True:
            states = await states_of(redis, list(accepted))
            if sum(state in FINISHED_STATES for state in states.values()) >= share * total:
                break
            assert time.monotonic() < deadline, f"fewer than {share:.0%} of the jobs finished"
            await asyncio.sleep(0.02)
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)


async def test_every_accepted_job_finishes_once_across_two_redis_restarts_under_load(
    spawn_worker: SpawnWorker, redis: Redis, redis_server: RedisServer
) -> None:
    for name in ("first", "second"):
        spawn_worker(name)
    jobs: list[tuple[str, object]] = [
        *[("demo.echo", {"text": f"echo {i}"}) for i in range(300)],
        *[("demo.sleep", {"seconds": 0.3, "steps": 3}) for _ in range(20)],
        *[("demo.fail", {"times": 1}) for _ in range(20)],
    ]
    random.Random(7).shuffle(jobs)
    store = JobStore(redis)
    accepted: list[str] = []

    async with asyncio.TaskGroup() as group:
        group.create_task(submit_under_outages(store, jobs, accepted))
        group.create_task(restart_while_running(redis_server, redis, accepted, len(jobs)))

    assert len(accepted) == len(jobs)
    states = await wait_until_finished(redis, accepted)
    finished_as = sorted(set(states.values()), key=str)
    assert set(finished_as) <= {"completed", "dead"}, finished_as
    for job_id, state in states.items():
        if state == "dead":
            view = await store.get([QUEUE], job_id)
            assert view is not None
            assert view.attempt == view.max_attempts, f"{job_id} died with attempts left"
    completions = await completions_per_job(redis)
    assert max(completions.values()) == 1
    assert {job_id for job_id, state in states.items() if state == "completed"} <= set(
        completions
    ), "a completed job is missing its job.completed event"
    await wait_until_nothing_pending(redis)
    for lane in LANES:
        assert await redis.xlen(lane.stream) == 0


WAVES = 6
WAVE_SIZE = 500
# The gateway side caps the events stream low; the worker keeps the default cap.
ENQUEUE_EVENTS_MAXLEN = 1_000
# What MEMORY USAGE leaves out for a key with a TTL: its entry in the expires dict, and its
# share of both dicts' bucket arrays.
KEY_OVERHEAD_BYTES = 64


async def data_memory(redis: Redis) -> int:
    """Bytes Redis has allocated, less client and AOF buffers, which follow traffic, not data."""
    info: dict[str, Any] = await redis.info("memory")
    return int(info["used_memory"]) - int(info["mem_clients_normal"]) - int(info["mem_aof_buffer"])


async def hash_bytes(redis: Redis, job_ids: Sequence[str]) -> float:
    """The average memory one of these job records takes, including what MEMORY USAGE omits."""
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.memory_usage(KEYS.job(job_id))
        sizes: list[int] = await pipe.execute()
    return sum(sizes) / len(sizes) + KEY_OVERHEAD_BYTES


async def index_bytes(redis: Redis, jobs: int) -> float:
    """What one retained job adds to the listing indexes: by queue, by owner, by expiry."""
    indexes = (KEYS.jobs, KEYS.owner_jobs("alice"), KEYS.expiring)
    sizes = [await redis.memory_usage(key, samples=0) or 0 for key in indexes]
    return sum(sizes) / jobs


async def test_memory_stays_bounded_under_waves_of_jobs(
    spawn_worker: SpawnWorker, redis: Redis
) -> None:
    spawn_worker("steady")
    settings = StoreSettings()
    store = JobStore(redis, StoreSettings(events_maxlen=ENQUEUE_EVENTS_MAXLEN))
    first_wave_memory = 0
    jobs_after_first_wave = 0
    all_jobs: list[str] = []

    for wave in range(WAVES):
        wave_jobs = [
            envelope_of("demo.echo", {"text": f"wave {wave} job {i}"}) for i in range(WAVE_SIZE)
        ]
        for envelope in wave_jobs:
            await store.enqueue(envelope)
        ids = [envelope.id for envelope in wave_jobs]
        all_jobs.extend(ids)

        states = await wait_until_finished(redis, ids)

        assert set(states.values()) == {"completed"}
        for lane in LANES:
            assert await redis.xlen(lane.stream) == 0, "finished jobs left entries behind"
            assert await pending_count(redis, lane.stream) == 0
        events = await redis.xlen(KEYS.events)
        assert events <= settings.events_maxlen + TRIM_SLACK
        # Meaningful, unlike the default cap: the last enqueue trimmed the stream to its low
        # cap, and since then at most the wave's started and completed events were added.
        assert events <= ENQUEUE_EVENTS_MAXLEN + TRIM_SLACK + 2 * WAVE_SIZE
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.pttl(KEYS.job(job_id))
            ttls: list[int] = await pipe.execute()
        assert all(0 < ttl <= settings.completed_ttl_s * 1000 for ttl in ttls)
        if wave == 0:
            first_wave_memory = await data_memory(redis)
            jobs_after_first_wave = len(all_jobs)

    # Between the first wave and the last, the only data meant to grow is the finished job
    # records, kept for `completed_ttl_s` (a day), with their index entries: allow exactly
    # those, at their measured size (~1.1 KB per record, ~0.3 KB in the three indexes).
    # Everything else (queue stream, pending entries, delayed set, events) must stay as it was.
    # Measured here: ~2.4 MB after the first wave, ~1.15 KB per record, ~265 B per event. The
    # 1.5x leaves ~1 MB for the events stream's length varying between waves (1,500 to 2,100
    # entries, ~160 KB apart) and the dicts' growth; an events stream nobody trims would add
    # 7,500 entries (~2 MB), and entries left on the queue stream ~1 MB more.
    record_bytes = await hash_bytes(redis, all_jobs[-100:]) + await index_bytes(
        redis, len(all_jobs)
    )
    allowed = 1.5 * first_wave_memory + (len(all_jobs) - jobs_after_first_wave) * record_bytes
    last_wave_memory = await data_memory(redis)
    assert last_wave_memory <= allowed, (
        f"{last_wave_memory} bytes after {len(all_jobs)} jobs; after the first wave "
        f"{first_wave_memory}, each job record {record_bytes:.0f}"
    )
