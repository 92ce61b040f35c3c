"""The worker counts and times every attempt by queue and type, as Prometheus reads it."""

from __future__ import annotations

import uuid

import msgspec
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.jobs import JobEnvelope
from shared.jobstore import JobStore
from shared.streams import Lane
from tests.streams import read_group
from worker.app import create_registry
from worker.metrics import JobMetrics
from worker.retry import RetryPolicy
from worker.runner import JobRunner

LANE = Lane("default")


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


async def test_attempts_are_counted_and_timed_by_queue_and_type(
    redis: Redis, store: JobStore
) -> None:
    registry = CollectorRegistry()
    runner = JobRunner(
        store,
        create_registry(),
        RetryPolicy(schedule_s=(0.0,)),
        consumer="c",
        max_deliveries=5,
        metrics=JobMetrics(registry),
    )
    for job_type, payload, max_attempts in (
        ("demo.echo", {"text": "x"}, 1),
        ("demo.fail", {"times": 1}, 2),
        ("demo.fail", {"times": 5}, 1),
    ):
        await store.enqueue(
            JobEnvelope(
                id=str(uuid.uuid4()),
                type=job_type,
                queue="default",
                owner="alice",
                max_attempts=max_attempts,
                enqueued_at_ms=now_ms(),
                payload=msgspec.Raw(msgspec.json.encode(payload)),
            )
        )

    for entry_id, data in await read_group(redis, LANE.stream, "c"):
        await runner.run(LANE, entry_id, data)

    echo = {"queue": "default", "type": "demo.echo"}
    fail = {"queue": "default", "type": "demo.fail"}
    assert sample(registry, "conduit_jobs_started_total", **echo) == 1
    assert sample(registry, "conduit_jobs_completed_total", **echo) == 1
    assert sample(registry, "conduit_jobs_started_total", **fail) == 2
    assert sample(registry, "conduit_jobs_failed_total", **fail) == 2
    assert sample(registry, "conduit_jobs_retried_total", **fail) == 1
    assert sample(registry, "conduit_jobs_dead_lettered_total", **fail) == 1
    assert sample(registry, "conduit_job_duration_seconds_count", **echo) == 1
    assert sample(registry, "conduit_job_wait_seconds_count", **fail) == 2
    assert sample(registry, "conduit_jobs_running", queue="default") == 0
