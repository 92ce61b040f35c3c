"""Paused queues in the worker: the gate, the watch on a real Redis, and real worker processes."""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from typing import Any, cast

import msgspec
import pytest
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.codec import event_decoder
from shared.contracts.events import JobStarted
from shared.contracts.jobs import JobEnvelope, JobView, Priority
from shared.jobstore import JobStore
from shared.queuestats import PauseMark, pause, read_snapshot, resume
from shared.streams import WORKER_GROUP, Lane, QueueKeys
from tests.envelopes import job_envelope
from tests.streams import pending_count, read_group, stream_entries
from tests.waiting import wait_for
from tests.worker.conftest import SpawnWorker
from worker.admission import Admission
from worker.pause import PauseGate, PauseWatch
from worker.watch import ConsumerWatch

DEFAULT = Lane("default")
HIGH = Lane("default", "high")
REPORTS = Lane("reports")
KEYS = QueueKeys("default")
# Longer than the pause watch's interval (1 s) and the consumer watch's (2 s): had either let a
# job of the paused queue start, or restarted its consumer, it would show by then.
QUIET_S = 3.0


async def finished(task: asyncio.Task[Any]) -> bool:
    """Whether `task` is done once everything ready to run has run."""
    for _ in range(5):
        await asyncio.sleep(0)
    return task.done()


async def through(gate: PauseGate, lane: Lane, admission: Admission | None = None) -> bool:
    """What the gate answers a job of `lane`: True (it may start) or False (it goes back)."""
    async with gate.slot(lane, admission) as admitted:
        return admitted


async def test_a_job_of_a_paused_queue_waits_at_the_gate_and_starts_on_resume() -> None:
    gate = PauseGate()
    gate.update(frozenset({"default"}))

    waiting = asyncio.create_task(through(gate, DEFAULT))

    assert not await finished(waiting)
    assert await through(gate, REPORTS)
    assert gate.passed(DEFAULT) == 0
    gate.update(frozenset())
    assert await waiting


async def test_jobs_at_the_gate_go_back_unstarted_when_their_lane_is_parked_or_at_shutdown() -> (
    None
):
    gate = PauseGate()
    gate.update(frozenset({"default", "reports"}))
    parked = asyncio.create_task(through(gate, DEFAULT))
    closing = asyncio.create_task(through(gate, REPORTS))
    assert not await finished(parked)

    gate.park(DEFAULT)

    assert await parked is False
    assert not await finished(closing)
    gate.close()
    assert await closing is False
    # Shutdown does not stop the jobs of queues that are not paused.
    gate.update(frozenset())
    assert await through(gate, REPORTS)


async def test_a_job_paused_while_it_waits_for_a_slot_leaves_the_slot_to_another_queue() -> None:
    gate = PauseGate()
    admission = Admission(1, {DEFAULT: 1, REPORTS: 1})
    running = gate.slot(REPORTS, admission)
    assert await running.__aenter__()
    queued = asyncio.create_task(through(gate, DEFAULT, admission))
    assert not await finished(queued)
    assert gate.passed(DEFAULT) == 1

    gate.update(frozenset({"default"}))
    await running.__aexit__(None, None, None)

    # The freed slot went to the paused job, which gave it back instead of starting.
    assert await through(gate, REPORTS, admission)
    assert not await finished(queued)
    assert gate.passed(DEFAULT) == 0
    gate.update(frozenset())
    assert await queued


class FakeSubscriber:
    """Stands in for a FastStream subscriber: whether it runs, and how often it was switched."""

    def __init__(self) -> None:
        self.running = True
        self.starts = 0
        self.stops = 0

    async def start(self) -> None:
        self.running = True
        self.starts += 1

    async def stop(self) -> None:
        self.running = False
        self.stops += 1


async def idle_ms_of(redis: Redis, stream: str) -> list[int]:
    rows = cast(
        "list[dict[str, Any]]", await redis.xpending_range(stream, WORKER_GROUP, "-", "+", 100)
    )
    return [int(row["time_since_delivered"]) for row in rows]


async def test_the_watch_stops_a_paused_lane_once_idle_hands_back_what_it_read_and_restarts_it(
    redis: Redis, store: JobStore
) -> None:
    gate = PauseGate()
    subscriber, other = FakeSubscriber(), FakeSubscriber()
    watch = PauseWatch(
        redis,
        store,
        gate,
        {DEFAULT: subscriber, REPORTS: other},
        consumer="w",
        interval_s=60,
        stopping=lambda: False,
    )
    for _ in range(2):
        await store.enqueue(job_envelope(payload={"text": "x"}))
    # What the subscriber read before the pause took effect, and one job of it running here.
    assert len(await read_group(redis, DEFAULT.stream, "w")) == 2
    running = gate.slot(DEFAULT, None)
    assert await running.__aenter__()
    await pause(redis, "default", PauseMark(by="root", at_ms=now_ms()))

    await watch.check()

    assert gate.paused("default")
    # Stopping it now would cancel the running job once the grace period is over.
    assert (subscriber.stops, subscriber.running) == (0, True)
    await running.__aexit__(None, None, None)
    await watch.check()
    assert (subscriber.stops, subscriber.running, gate.parked(DEFAULT)) == (1, False, True)
    assert other.stops == 0
    # Still pending, but claimable at once by any worker after the resume.
    assert all(idle >= 10_000 for idle in await idle_ms_of(redis, DEFAULT.stream))
    assert len(await idle_ms_of(redis, DEFAULT.stream)) == 2

    consumers = ConsumerWatch(
        store, {DEFAULT: subscriber}, interval_s=0.01, stopping=lambda: False, parked=gate.parked
    )
    watching = asyncio.create_task(consumers.run())
    await asyncio.sleep(0.1)
    watching.cancel()
    assert subscriber.starts == 0

    await resume(redis, "default")
    await watch.check()
    assert (subscriber.starts, subscriber.running, gate.parked(DEFAULT)) == (1, True, False)
    assert not gate.paused("default")


async def test_the_watch_keeps_its_last_view_while_redis_cannot_be_read(
    redis: Redis, store: JobStore, redis_url: str
) -> None:
    gate = PauseGate()
    await pause(redis, "default", PauseMark(by="root", at_ms=now_ms()))
    broken = Redis.from_url(redis_url.replace("redis://", "redis://wrong:password@", 1))
    try:
        for client in (redis, broken):
            watch = PauseWatch(
                client,
                store,
                gate,
                {DEFAULT: FakeSubscriber()},
                consumer="w",
                interval_s=60,
                stopping=lambda: False,
            )
            await watch.check()
            assert gate.paused("default")
    finally:
        await broken.aclose()


# Real worker processes on the test's Redis.


async def enqueue(store: JobStore, job_type: str, payload: bytes, priority: Priority) -> str:
    now = now_ms()
    envelope = JobEnvelope(
        id=str(uuid.uuid4()),
        type=job_type,
        queue="default",
        priority=priority,
        owner="alice",
        max_attempts=3,
        enqueued_at_ms=now,
        due_at_ms=now,
        payload=msgspec.Raw(payload),
    )
    await store.enqueue(envelope)
    return envelope.id


async def enqueue_echoes(store: JobStore, count: int) -> list[str]:
    priorities: tuple[Priority, ...] = ("high", "normal", "low")
    return [
        await enqueue(store, "demo.echo", b'{"text":"x"}', priorities[index % 3])
        for index in range(count)
    ]


async def view_of(store: JobStore, job_id: str) -> JobView:
    view = await store.get(["default"], job_id)
    assert view is not None
    return view


async def assert_none_started(store: JobStore, job_ids: list[str]) -> None:
    for job_id in job_ids:
        view = await view_of(store, job_id)
        assert (view.state, view.started_at_ms) == ("queued", None)


async def starts_of(redis: Redis, job_ids: list[str]) -> dict[str, int]:
    counts = dict.fromkeys(job_ids, 0)
    for _id, data in await stream_entries(redis, KEYS.events):
        event = event_decoder.decode(data)
        if isinstance(event, JobStarted) and event.job_id in counts:
            counts[event.job_id] += 1
    return counts


@pytest.fixture
async def paused_default(redis: Redis) -> None:
    """The default queue, paused by root."""
    await pause(redis, "default", PauseMark(by="root", at_ms=now_ms()))


@pytest.mark.slow
async def test_a_worker_starts_no_job_of_a_paused_queue_and_runs_them_all_after_resume(
    spawn_worker: SpawnWorker, redis: Redis, store: JobStore
) -> None:
    spawn_worker("pausing")
    await pause(redis, "default", PauseMark(by="root", at_ms=now_ms()))
    await asyncio.sleep(1.5)  # the worker sees the pause within a second
    job_ids = await enqueue_echoes(store, 6)

    await asyncio.sleep(QUIET_S)

    await assert_none_started(store, job_ids)
    # Its consumers were stopped, and not restarted: the jobs wait in the streams, unread.
    for lane in (HIGH, DEFAULT, Lane("default", "low")):
        assert await pending_count(redis, lane.stream) == 0
    assert sum(lane.lag for lane in (await read_snapshot(redis, ["default"])).lanes) == 6
    await resume(redis, "default")
    for job_id in job_ids:
        await wait_for(store, job_id, "completed")
    assert set((await starts_of(redis, job_ids)).values()) == {1}


@pytest.mark.slow
async def test_a_job_running_when_its_queue_is_paused_finishes_and_the_next_ones_wait(
    spawn_worker: SpawnWorker, redis: Redis, store: JobStore
) -> None:
    spawn_worker("busy")
    sleeper = await enqueue(store, "demo.sleep", b'{"seconds":3,"steps":3}', "normal")
    await wait_for(store, sleeper, "active")
    await pause(redis, "default", PauseMark(by="root", at_ms=now_ms()))
    await asyncio.sleep(1.5)
    # Read by the consumer still running for the sleeper's sake: they wait at the gate.
    job_ids = await enqueue_echoes(store, 4)

    assert (await wait_for(store, sleeper, "completed")).result == {"slept_s": 3.0}
    await asyncio.sleep(QUIET_S)

    await assert_none_started(store, job_ids)
    await resume(redis, "default")
    for job_id in job_ids:
        await wait_for(store, job_id, "completed")
    assert set((await starts_of(redis, job_ids)).values()) == {1}


@pytest.mark.slow
async def test_a_worker_started_while_its_queue_is_paused_starts_none_of_its_jobs(
    spawn_worker: SpawnWorker, redis: Redis, store: JobStore, paused_default: None
) -> None:
    job_ids = await enqueue_echoes(store, 6)
    spawn_worker("late")

    await asyncio.sleep(QUIET_S)

    await assert_none_started(store, job_ids)
    await resume(redis, "default")
    for job_id in job_ids:
        await wait_for(store, job_id, "completed")


@pytest.mark.slow
async def test_a_dead_workers_job_of_a_paused_queue_is_not_reclaimed_until_resume(
    spawn_worker: SpawnWorker, redis: Redis, store: JobStore, paused_default: None
) -> None:
    await store.ensure_group(HIGH)
    [job_id] = await enqueue_echoes(store, 1)
    # A worker read it and died: its lease (2 s in these tests) lapses while the queue is paused.
    assert len(await read_group(redis, HIGH.stream, "dead")) == 1
    spawn_worker("survivor")

    await asyncio.sleep(QUIET_S)

    await assert_none_started(store, [job_id])
    # Not even claimed: it would only wait in the survivor, taking a slot of its reclaimer.
    [row] = cast(
        "list[dict[str, Any]]", await redis.xpending_range(HIGH.stream, WORKER_GROUP, "-", "+", 1)
    )
    assert row["consumer"] == b"dead"
    await resume(redis, "default")
    await wait_for(store, job_id, "completed")
    assert (await starts_of(redis, [job_id]))[job_id] == 1


@pytest.mark.slow
async def test_jobs_waiting_for_a_resume_do_not_hold_up_a_worker_leaving_on_sigterm(
    spawn_worker: SpawnWorker, redis: Redis, store: JobStore
) -> None:
    leaving = spawn_worker("leaving", WORKER_GRACE_S="15")
    sleeper = await enqueue(store, "demo.sleep", b'{"seconds":2,"steps":2}', "normal")
    await wait_for(store, sleeper, "active")
    await pause(redis, "default", PauseMark(by="root", at_ms=now_ms()))
    await asyncio.sleep(1.5)
    job_ids = await enqueue_echoes(store, 4)
    await asyncio.sleep(0.5)
    began = time.monotonic()

    leaving.signal(signal.SIGTERM)

    assert leaving.wait(timeout_s=20) == 0
    # The sleeper finished; the jobs at the gate went back instead of waiting out the grace.
    assert time.monotonic() - began < 10
    assert (await view_of(store, sleeper)).state == "completed"
    await assert_none_started(store, job_ids)
    await resume(redis, "default")
    spawn_worker("next")
    for job_id in job_ids:
        await wait_for(store, job_id, "completed")
