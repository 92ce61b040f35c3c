"""The runner against a real Redis: every delivered entry ends with one fenced, evented outcome."""

from __future__ import annotations

import uuid

import msgspec
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.codec import dead_letter_decoder, encoder, event_decoder
from shared.contracts.jobs import AttemptError, JobEnvelope
from shared.jobstore import JobStore, StartOutcome
from shared.streams import DATA_FIELD, Lane, QueueKeys
from tests.streams import pending_count, read_group, stream_entries
from worker.app import create_registry
from worker.registry import JobContext, Registry
from worker.retry import RetryPolicy
from worker.runner import UNEXPECTED_FAILURE, JobRunner

KEYS = QueueKeys("default")
LANE = Lane("default")
INSTANT = RetryPolicy(schedule_s=(0.0,))


def make_envelope(job_type: str, payload: object, *, max_attempts: int = 4) -> JobEnvelope:
    return JobEnvelope(
        id=str(uuid.uuid4()),
        type=job_type,
        queue="default",
        owner="alice",
        max_attempts=max_attempts,
        enqueued_at_ms=now_ms(),
        payload=msgspec.Raw(msgspec.json.encode(payload)),
    )


CONSUMER = "test"


def make_runner(store: JobStore, registry: Registry, max_deliveries: int = 5) -> JobRunner:
    return JobRunner(store, registry, INSTANT, consumer=CONSUMER, max_deliveries=max_deliveries)


async def deliver(redis: Redis, runner: JobRunner) -> int:
    """Read what the group has for one consumer and run each entry, as a worker would."""
    entries = await read_group(redis, KEYS.stream, CONSUMER)
    for entry_id, data in entries:
        await runner.run(LANE, entry_id, data)
    return len(entries)


async def event_kinds(redis: Redis, job_id: str) -> list[str]:
    entries = await stream_entries(redis, KEYS.events)
    events = [event_decoder.decode(data) for _id, data in entries]
    return [msgspec.json.decode(encoder.encode(e))["event"] for e in events if e.job_id == job_id]


async def test_an_echo_job_completes_with_its_result_and_its_lifecycle_events(
    redis: Redis, store: JobStore
) -> None:
    envelope = make_envelope("demo.echo", {"text": "hi"})
    await store.enqueue(envelope)
    runner = make_runner(store, create_registry())

    assert await deliver(redis, runner) == 1

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.state == "completed"
    assert view.result == {"text": "hi"}
    assert view.attempt == 1
    assert await event_kinds(redis, envelope.id) == ["job.queued", "job.started", "job.completed"]
    # The entry is acknowledged and gone: nothing pending, nothing left to redeliver.
    assert await pending_count(redis, KEYS.stream) == 0
    assert await redis.xlen(KEYS.stream) == 0


async def test_a_failing_job_is_parked_then_retried_and_completes_on_a_later_attempt(
    redis: Redis, store: JobStore
) -> None:
    envelope = make_envelope("demo.fail", {"times": 1})
    await store.enqueue(envelope)
    registry = create_registry()
    runner = make_runner(store, registry)

    await deliver(redis, runner)
    parked = await store.get(["default"], envelope.id)
    assert parked is not None
    assert parked.state == "retrying"
    assert [error.attempt for error in parked.errors] == [1]
    assert await redis.zcard(KEYS.delayed) == 1

    assert await store.promote_due("default", now_ms() + 10_000) == 1
    await deliver(redis, runner)

    done = await store.get(["default"], envelope.id)
    assert done is not None
    assert (done.state, done.attempt) == ("completed", 2)
    assert done.result == {"succeeded_on_attempt": 2}
    assert await event_kinds(redis, envelope.id) == [
        "job.queued",
        "job.started",
        "job.retrying",
        "job.started",
        "job.completed",
    ]


async def test_a_job_out_of_attempts_is_dead_lettered_with_every_attempts_error(
    redis: Redis, store: JobStore
) -> None:
    envelope = make_envelope("demo.fail", {"times": 5, "message": "boom"}, max_attempts=2)
    await store.enqueue(envelope)
    runner = make_runner(store, create_registry())

    await deliver(redis, runner)
    await store.promote_due("default", now_ms() + 10_000)
    await deliver(redis, runner)

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.state == "dead"
    assert [error.attempt for error in view.errors] == [1, 2]
    assert "boom" in view.errors[-1].message
    assert "Traceback" in view.errors[-1].detail
    [(_id, data)] = await stream_entries(redis, KEYS.dead)
    letter = dead_letter_decoder.decode(data)
    assert letter.job is not None
    assert letter.job.id == envelope.id
    assert [error.attempt for error in letter.errors] == [1, 2]
    assert (await event_kinds(redis, envelope.id))[-1] == "job.dead_lettered"


async def test_an_undecodable_entry_is_dead_lettered_with_the_reason_not_dropped(
    redis: Redis, store: JobStore
) -> None:
    await redis.xadd(KEYS.stream, {DATA_FIELD: b"not json at all"})
    runner = make_runner(store, create_registry())

    assert await deliver(redis, runner) == 1

    [(_id, data)] = await stream_entries(redis, KEYS.dead)
    letter = dead_letter_decoder.decode(data)
    assert letter.reason.startswith("undecodable job")
    assert letter.raw == "not json at all"
    assert await pending_count(redis, KEYS.stream) == 0


async def test_an_unknown_job_type_goes_straight_to_the_dead_letters(
    redis: Redis, store: JobStore
) -> None:
    envelope = make_envelope("demo.echo", {"text": "hi"})
    await store.enqueue(envelope)
    runner = make_runner(store, Registry())

    await deliver(redis, runner)

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert (view.state, view.attempt) == ("dead", 1)
    assert "demo.echo" in view.errors[0].message


async def test_an_invalid_payload_is_dead_lettered_without_retries(
    redis: Redis, store: JobStore
) -> None:
    envelope = make_envelope("demo.echo", {"wrong": 1})
    await store.enqueue(envelope)
    runner = make_runner(store, create_registry())

    await deliver(redis, runner)

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.state == "dead"
    assert "invalid payload" in view.errors[0].message


async def test_an_unexpected_exception_shows_the_owner_a_generic_message(
    redis: Redis, store: JobStore
) -> None:
    async def broken(payload: object, ctx: JobContext) -> None:
        raise KeyError("internal detail")

    registry = Registry()
    registry.add("demo.echo", broken)
    envelope = make_envelope("demo.echo", {"text": "hi"}, max_attempts=1)
    await store.enqueue(envelope)

    await deliver(redis, make_runner(store, registry))

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.errors[0].message == UNEXPECTED_FAILURE
    assert "internal detail" in view.errors[0].detail


async def test_a_stale_attempt_cannot_complete_a_job_started_again(
    redis: Redis, store: JobStore
) -> None:
    envelope = make_envelope("demo.echo", {"text": "hi"})
    await store.enqueue(envelope)
    [(entry, _data)] = await read_group(redis, KEYS.stream, "old")
    started = await store.start(envelope, "old-token", now_ms(), entry_id=entry, consumer="old")
    assert started is StartOutcome.STARTED
    # The old worker stops renewing its lease; another takes the entry over and starts again.
    [reclaimed] = await store.reclaim(LANE, "new", min_idle_ms=0, count=10)
    assert reclaimed.entry_id == entry
    restarted = await store.start(envelope, "new-token", now_ms(), entry_id=entry, consumer="new")
    assert restarted is StartOutcome.STARTED

    refused = await store.complete(envelope, "old-token", entry, "late", now_ms())
    accepted = await store.complete(envelope, "new-token", entry, "fresh", now_ms())

    assert (refused, accepted) == (False, True)
    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.result == "fresh"
    error = AttemptError(attempt=1, message="late", at_ms=now_ms())
    assert not await store.retry(envelope, "old-token", entry, error, due_ms=0, now_ms=now_ms())


async def test_a_repeated_idempotency_key_returns_the_first_job(store: JobStore) -> None:
    first = make_envelope("demo.echo", {"text": "a"})
    second = make_envelope("demo.echo", {"text": "b"})

    assert await store.enqueue(first, idempotency_key="k1") == (first.id, True)
    assert await store.enqueue(second, idempotency_key="k1") == (first.id, False)
    assert await store.get(["default"], second.id) is None


async def test_progress_is_recorded_and_evented_while_a_sleep_job_runs(
    redis: Redis, store: JobStore
) -> None:
    envelope = make_envelope("demo.sleep", {"seconds": 0.02, "steps": 2})
    await store.enqueue(envelope)

    await deliver(redis, make_runner(store, create_registry()))

    kinds = await event_kinds(redis, envelope.id)
    assert kinds.count("job.progress") == 2
    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.progress == 1.0


async def test_an_attempt_past_its_timeout_fails_with_a_timeout_error_and_is_retried(
    redis: Redis, store: JobStore
) -> None:
    envelope = msgspec.structs.replace(
        make_envelope("demo.sleep", {"seconds": 5, "steps": 1}), timeout_s=0.05
    )
    await store.enqueue(envelope)

    await deliver(redis, make_runner(store, create_registry()))

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.state == "retrying"
    assert "timeout of 0.05 s" in view.errors[0].message


async def test_a_delayed_job_is_promoted_only_once_it_is_due(redis: Redis, store: JobStore) -> None:
    now = now_ms()
    envelope = msgspec.structs.replace(
        make_envelope("demo.echo", {"text": "later"}), enqueued_at_ms=now, due_at_ms=now + 5_000
    )
    await store.enqueue(envelope)

    assert await store.promote_due("default", now + 4_999) == 0
    assert await deliver(redis, make_runner(store, create_registry())) == 0
    assert await store.promote_due("default", now + 5_000) == 1
    await deliver(redis, make_runner(store, create_registry()))

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert view.state == "completed"


async def test_a_cancelled_queued_job_is_dropped_by_the_worker_without_running(
    redis: Redis, store: JobStore
) -> None:
    envelope = make_envelope("demo.echo", {"text": "never"})
    await store.enqueue(envelope)
    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert await store.cancel(view, "alice", now_ms())

    await deliver(redis, make_runner(store, create_registry()))

    after = await store.get(["default"], envelope.id)
    assert after is not None
    assert after.state == "cancelled"
    assert await pending_count(redis, KEYS.stream) == 0
    assert (await event_kinds(redis, envelope.id))[-1] == "job.cancelled"


async def test_a_retried_high_priority_job_returns_to_the_high_stream(
    redis: Redis, store: JobStore
) -> None:
    high = Lane("default", "high")
    await store.ensure_group(high)
    envelope = msgspec.structs.replace(make_envelope("demo.fail", {"times": 1}), priority="high")
    await store.enqueue(envelope)
    runner = make_runner(store, create_registry())

    [(entry, data)] = await read_group(redis, high.stream, CONSUMER)
    await runner.run(high, entry, data)
    assert await store.promote_due("default", now_ms() + 10_000) == 1
    [(again, data)] = await read_group(redis, high.stream, CONSUMER)
    await runner.run(high, again, data)

    view = await store.get(["default"], envelope.id)
    assert view is not None
    assert (view.state, view.priority) == ("completed", "high")
    assert await redis.xlen(KEYS.stream) == 0
