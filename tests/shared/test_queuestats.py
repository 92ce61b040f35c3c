"""Queue figures: counters and pause flags from a real Redis, and the overview built of them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.jobs import Priority
from shared.jobstore import JobStore, StartOutcome
from shared.queuestats import (
    HISTORY_MINUTES,
    MINUTE_MS,
    LaneStats,
    MinuteCounts,
    PauseMark,
    QueueSnapshot,
    QueueStats,
    counter_fields,
    counters,
    history_minutes,
    overview,
    pause,
    pause_mark,
    paused_queues,
    read_snapshot,
    resume,
)
from shared.streams import Lane, QueueKeys
from tests.envelopes import job_envelope
from tests.streams import read_group

# 2024-05-01 12:34:56.789: the last full minute is 12:33.
NOW_MS = 1_714_566_896_789
LAST_MINUTE = NOW_MS // MINUTE_MS - 1


def lane(priority: Priority, *, lag: int, pending: int, age_s: float = 0.0) -> LaneStats:
    return LaneStats(
        queue="default",
        priority=priority,
        depth=lag + pending,
        lag=lag,
        pending=pending,
        oldest_pending_age_s=age_s,
    )


@given(st.integers(min_value=MINUTE_MS * 2, max_value=2**45))
def test_the_history_is_the_last_full_minutes_then_the_current_one(at_ms: int) -> None:
    minutes = history_minutes(at_ms)
    assert len(minutes) == HISTORY_MINUTES + 1
    assert list(minutes) == sorted(minutes)
    # The minute `at_ms` falls in is still counting: it comes last.
    assert minutes[-1] == at_ms // MINUTE_MS
    assert minutes[-1] - minutes[0] == HISTORY_MINUTES


def test_missing_counters_are_zeros() -> None:
    minutes = (LAST_MINUTE - 1, LAST_MINUTE)
    assert counter_fields(minutes) == [
        "completed",
        "failed",
        f"completed:{LAST_MINUTE - 1}",
        f"failed:{LAST_MINUTE - 1}",
        f"completed:{LAST_MINUTE}",
        f"failed:{LAST_MINUTE}",
    ]
    completed, failed, per_minute = counters(minutes, [b"12", None, None, b"3", b"4", None])
    assert (completed, failed) == (12, 0)
    assert per_minute == (
        MinuteCounts(minute_ms=(LAST_MINUTE - 1) * MINUTE_MS, completed=0, failed=3),
        MinuteCounts(minute_ms=LAST_MINUTE * MINUTE_MS, completed=4, failed=0),
    )


def test_a_pause_set_by_hand_still_pauses_by_nobody_known() -> None:
    assert pause_mark(None) is None
    assert pause_mark(b'{"by":"root","at_ms":5}') == PauseMark(by="root", at_ms=5)
    assert pause_mark(b"1") == PauseMark()


def test_the_overview_sums_the_lanes_and_takes_the_last_full_minute() -> None:
    minutes = tuple(
        MinuteCounts(minute_ms=minute * MINUTE_MS, completed=minute % 7, failed=1)
        for minute in history_minutes(NOW_MS)
    )
    snapshot = QueueSnapshot(
        lanes=(
            lane("high", lag=2, pending=1, age_s=4.5),
            lane("normal", lag=5, pending=0),
            lane("low", lag=0, pending=3, age_s=9.0),
        ),
        queues=(
            QueueStats(
                queue="default",
                delayed=4,
                dead_letters=2,
                completed=100,
                failed=9,
                minutes=minutes,
                pause=PauseMark(by="root", at_ms=NOW_MS),
            ),
        ),
        at_ms=NOW_MS,
    )
    view = overview(snapshot, "default")
    assert (view.name, view.paused, view.paused_by, view.paused_since_ms) == (
        "default",
        True,
        "root",
        NOW_MS,
    )
    assert (view.waiting, view.lag, view.active, view.delayed, view.dead) == (7, 7, 4, 4, 2)
    assert (view.completed, view.failed) == (100, 9)
    assert view.oldest_pending_age_s == 9.0
    assert view.jobs_per_minute == LAST_MINUTE % 7
    assert view.throughput == minutes
    assert [(lane.priority, lane.waiting, lane.active) for lane in view.lanes] == [
        ("high", 2, 1),
        ("normal", 5, 0),
        ("low", 0, 3),
    ]


async def test_a_snapshot_reads_the_counters_and_the_pause_of_each_queue(redis: Redis) -> None:
    counts = QueueKeys("default").counts
    await redis.hset(
        counts,
        mapping={
            "completed": 40,
            "failed": 6,
            f"completed:{LAST_MINUTE}": 11,
            f"failed:{LAST_MINUTE}": 2,
            f"completed:{LAST_MINUTE - 59}": 5,
            # The minute still counting comes last; one an hour and a minute ago is outside.
            f"completed:{LAST_MINUTE + 1}": 3,
            f"completed:{LAST_MINUTE - 60}": 99,
        },
    )
    assert await pause(redis, "reports", PauseMark(by="root", at_ms=NOW_MS))

    snapshot = await read_snapshot(redis, ["default", "reports"], clock=lambda: NOW_MS)

    default, reports = snapshot.queues
    assert (default.completed, default.failed, default.paused) == (40, 6, False)
    assert len(default.minutes) == HISTORY_MINUTES + 1
    assert default.minutes[-2] == MinuteCounts(
        minute_ms=LAST_MINUTE * MINUTE_MS, completed=11, failed=2
    )
    assert default.minutes[-1] == MinuteCounts(
        minute_ms=(LAST_MINUTE + 1) * MINUTE_MS, completed=3, failed=0
    )
    assert default.minutes[0].completed == 5
    assert sum(minute.completed for minute in default.minutes) == 19
    # A queue nothing has happened on yet: every counter is missing, and so zero.
    assert (reports.completed, reports.failed, reports.pause) == (
        0,
        0,
        PauseMark(by="root", at_ms=NOW_MS),
    )
    assert all(minute.completed == minute.failed == 0 for minute in reports.minutes)
    assert abs(snapshot.at_ms - now_ms()) < 5_000


async def test_a_job_completed_through_the_store_is_counted(redis: Redis, store: JobStore) -> None:
    job = job_envelope()
    await store.enqueue(job)
    [(entry_id, _data)] = await read_group(redis, Lane("default").stream, "worker-1")
    assert await store.start(job, "t1", now_ms(), entry_id=entry_id, consumer="worker-1") is (
        StartOutcome.STARTED
    )
    assert await store.complete(job, "t1", entry_id, {"ok": True}, now_ms())

    [default] = (await read_snapshot(redis, ["default"])).queues

    assert (default.completed, default.failed) == (1, 0)


async def test_pausing_twice_keeps_the_first_pause_and_resuming_twice_is_harmless(
    redis: Redis,
) -> None:
    assert await paused_queues(redis, ["default", "reports"]) == frozenset()
    assert await pause(redis, "default", PauseMark(by="alice", at_ms=1))
    assert not await pause(redis, "default", PauseMark(by="bob", at_ms=2))
    assert await paused_queues(redis, ["default", "reports"]) == {"default"}
    [default] = (await read_snapshot(redis, ["default"])).queues
    assert default.pause == PauseMark(by="alice", at_ms=1)

    assert await resume(redis, "default")
    assert not await resume(redis, "default")
    assert await paused_queues(redis, ["default", "reports"]) == frozenset()
