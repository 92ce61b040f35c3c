"""No-op jobs for the load, and what their records in Redis say about them afterwards."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence

import msgspec
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.jobs import DEFAULT_MAX_ATTEMPTS, JobEnvelope
from shared.streams import QueueKeys

ECHO = "demo.echo"
_ECHO_PAYLOAD = msgspec.Raw(msgspec.json.encode({"text": "bench"}))
_POLL_S = 0.02
_READ_CHUNK = 1_000


class JobTimes(msgspec.Struct, frozen=True):
    """When a job was created, started and finished (epoch ms), from its record."""

    created_ms: int
    started_ms: int | None
    finished_ms: int | None


def echo_envelope(queue: str, owner: str) -> JobEnvelope:
    """A `demo.echo` job due now, built as the gateway builds a submitted one."""
    now = now_ms()
    return JobEnvelope(
        id=str(uuid.uuid4()),
        type=ECHO,
        queue=queue,
        owner=owner,
        max_attempts=DEFAULT_MAX_ATTEMPTS,
        enqueued_at_ms=now,
        due_at_ms=now,
        payload=_ECHO_PAYLOAD,
    )


def echo_submission(queue: str) -> dict[str, object]:
    """The `POST /v1/jobs` body of a `demo.echo` job on `queue`."""
    return {"type": ECHO, "payload": {"text": "bench"}, "queue": queue}


async def completed_count(redis: Redis, queue: str) -> int:
    """How many jobs of `queue` have completed, by its counter."""
    value = await redis.hget(QueueKeys(queue).counts, "completed")
    return int(value) if value else 0


async def wait_completed(redis: Redis, queue: str, target: int, timeout_s: float) -> int:
    """Wait until `queue`'s completed counter reaches `target` or `timeout_s` passes; its value."""
    deadline = time.monotonic() + timeout_s
    while True:
        count = await completed_count(redis, queue)
        if count >= target or time.monotonic() > deadline:
            return count
        await asyncio.sleep(_POLL_S)


async def job_times(redis: Redis, queue: str, job_ids: Sequence[str]) -> list[JobTimes]:
    """The times of each job that still has a record, in the order of `job_ids`."""
    keys = QueueKeys(queue)
    found: list[JobTimes] = []
    for first in range(0, len(job_ids), _READ_CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids[first : first + _READ_CHUNK]:
                pipe.hmget(keys.job(job_id), "created_ms", "started_ms", "finished_ms")
            rows: list[list[bytes | None]] = await pipe.execute()
        found.extend(
            JobTimes(int(created), _optional(started), _optional(finished))
            for created, started, finished in rows
            if created is not None
        )
    return found


async def drop_keys(redis: Redis, pattern: str) -> int:
    """Delete every key matching `pattern`; how many went."""
    dropped = 0
    batch: list[bytes] = []
    async for key in redis.scan_iter(match=pattern, count=1_000):
        batch.append(key)
        if len(batch) >= _READ_CHUNK:
            dropped += await redis.unlink(*batch)
            batch = []
    if batch:
        dropped += await redis.unlink(*batch)
    return dropped


def _optional(value: bytes | None) -> int | None:
    return int(value) if value else None
