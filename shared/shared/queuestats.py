"""What each queue holds and has done, read from Redis in one round trip; and its pause flag.

Per lane (a queue's stream of one priority): its length, the worker group's lag and pending
entries, and the age of the oldest pending entry. Per queue: delayed jobs, dead letters, the
completed and failed counters (in all and per minute) and whether it is paused. The health
service exports these as gauges; the gateway answers them as each queue's overview.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from shared.clock import now_ms
from shared.contracts.jobs import Priority
from shared.streams import WORKER_GROUP, Lane, QueueKeys, lanes_of

MINUTE_MS = 60_000
# Full minutes of per-minute counters read with each snapshot: an hour of throughput chart.
HISTORY_MINUTES = 60


class LaneStats(msgspec.Struct, frozen=True, kw_only=True):
    """One lane's stream as the worker group sees it."""

    queue: str
    priority: Priority
    depth: int
    lag: int
    pending: int
    oldest_pending_age_s: float


class MinuteCounts(msgspec.Struct, frozen=True, kw_only=True):
    """The attempts of one queue that completed and that failed within one minute."""

    minute_ms: int
    completed: int
    failed: int


class PauseMark(msgspec.Struct, frozen=True, kw_only=True):
    """What a queue's `paused` key holds: who paused it, and when (absent if set by hand)."""

    by: str | None = None
    at_ms: int | None = None


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    """A queue's jobs that are not on a stream (parked for later, or dead), its counters and
    its pause flag."""

    queue: str
    delayed: int
    dead_letters: int
    completed: int = 0
    failed: int = 0
    # The last HISTORY_MINUTES full minutes, oldest first.
    minutes: tuple[MinuteCounts, ...] = ()
    pause: PauseMark | None = None

    @property
    def paused(self) -> bool:
        """Workers start none of this queue's jobs while it is paused."""
        return self.pause is not None


class QueueSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Every lane and queue, read at one moment (`at_ms`, Redis's clock)."""

    lanes: tuple[LaneStats, ...]
    queues: tuple[QueueStats, ...]
    at_ms: int = 0


def entry_ms(entry_id: bytes | str) -> int:
    """The millisecond timestamp of a stream entry id (`<ms>-<seq>`)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


def _group(groups: Any) -> dict[str, Any] | None:
    """The worker group's entry in an XINFO GROUPS answer, if the group exists."""
    if isinstance(groups, ResponseError):
        return None
    for group in groups:
        name = group["name"]
        if (name.decode() if isinstance(name, bytes) else name) == WORKER_GROUP:
            return dict(group)
    return None


def lane_stats(lane: Lane, depth: int, groups: Any, pending: Any, now_ms: int) -> LaneStats:
    """A lane's figures from its XLEN, XINFO GROUPS and XPENDING answers (errors: absent keys)."""
    group = _group(groups)
    if group is None:
        # The first worker creates the group at id 0 and reads the whole stream: all of it is lag.
        return LaneStats(
            queue=lane.queue,
            priority=lane.priority,
            depth=depth,
            lag=depth,
            pending=0,
            oldest_pending_age_s=0.0,
        )
    in_hand = int(group["pending"])
    lag = group.get("lag")
    if lag is None:
        # Redis cannot always count the lag after deletions; Conduit deletes every entry it acks,
        # so what the stream holds beyond the pending entries is exactly what no worker has read.
        lag = max(depth - in_hand, 0)
    oldest_age_s = 0.0
    if in_hand and not isinstance(pending, ResponseError) and pending.get("min"):
        oldest_age_s = max(now_ms - entry_ms(pending["min"]), 0) / 1000
    return LaneStats(
        queue=lane.queue,
        priority=lane.priority,
        depth=depth,
        lag=int(lag),
        pending=in_hand,
        oldest_pending_age_s=oldest_age_s,
    )


def history_minutes(now_ms: int) -> tuple[int, ...]:
    """The minute numbers (epoch ms // 60000) of the last HISTORY_MINUTES full minutes, then
    the current one, still counting: a chart shows what finished a moment ago."""
    current = now_ms // MINUTE_MS
    return tuple(range(current - HISTORY_MINUTES, current + 1))


def counter_fields(minutes: Iterable[int]) -> list[str]:
    """The `counts` fields to read: both totals, then completed and failed of each minute."""
    fields = ["completed", "failed"]
    for minute in minutes:
        fields += [f"completed:{minute}", f"failed:{minute}"]
    return fields


def _int(value: bytes | None) -> int:
    # The counters appear with the first outcome they count: a missing one is a zero.
    return 0 if value is None else int(value)


def counters(
    minutes: Sequence[int], values: Sequence[bytes | None]
) -> tuple[int, int, tuple[MinuteCounts, ...]]:
    """Totals and per-minute counts from an HMGET of `counter_fields(minutes)`."""
    per_minute = tuple(
        MinuteCounts(
            minute_ms=minute * MINUTE_MS,
            completed=_int(values[2 + 2 * index]),
            failed=_int(values[3 + 2 * index]),
        )
        for index, minute in enumerate(minutes)
    )
    return _int(values[0]), _int(values[1]), per_minute


def pause_mark(raw: bytes | None) -> PauseMark | None:
    """The pause a `paused` key's value records; None when the queue is not paused."""
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=PauseMark)
    except (msgspec.DecodeError, msgspec.ValidationError):
        # Set by hand (`SET ... 1`): the queue is paused all the same, by nobody we know of.
        return PauseMark()


def _raise_unexpected(answers: Iterable[Any]) -> None:
    """Missing streams and groups answer with ResponseErrors we expect; anything else is real."""
    for answer in answers:
        if isinstance(answer, Exception) and not (
            isinstance(answer, ResponseError)
            and ("no such key" in str(answer) or "NOGROUP" in str(answer))
        ):
            raise answer


def _triples(answers: Sequence[Any]) -> Iterable[tuple[Any, Any, Any]]:
    return zip(answers[::3], answers[1::3], answers[2::3], strict=True)


def _quads(answers: Sequence[Any]) -> Iterable[tuple[Any, Any, Any, Any]]:
    return zip(answers[::4], answers[1::4], answers[2::4], answers[3::4], strict=True)


async def read_snapshot(
    redis: Redis, queues: Sequence[str], *, clock: Callable[[], int] = now_ms
) -> QueueSnapshot:
    """Read every lane and queue in one pipeline.

    Ages use Redis's clock, as entry ids do; the minutes of the counters use `clock`, the wall
    clock the workers count outcomes by.
    """
    lanes = lanes_of(queues)
    minutes = history_minutes(clock())
    fields = counter_fields(minutes)
    # A cluster pipeline refuses keyless commands: there TIME is a round trip of its own, to one
    # node (the masters' clocks agree far closer than the seconds these ages are read in).
    cluster_time = await redis.time() if isinstance(redis, RedisCluster) else None
    async with redis.pipeline(transaction=False) as pipe:
        if cluster_time is None:
            pipe.time()
        for lane in lanes:
            pipe.xlen(lane.stream)
            pipe.xinfo_groups(lane.stream)
            pipe.xpending(lane.stream, WORKER_GROUP)
        for queue in queues:
            keys = QueueKeys(queue)
            pipe.zcard(keys.delayed)
            pipe.xlen(keys.dead)
            pipe.hmget(keys.counts, fields)
            pipe.get(keys.paused)
        answers: list[Any] = await pipe.execute(raise_on_error=False)
    if cluster_time is not None:
        answers.insert(0, cluster_time)
    _raise_unexpected(answers)
    seconds, microseconds = answers[0]
    redis_ms = int(seconds) * 1000 + int(microseconds) // 1000
    lane_answers = answers[1 : 1 + 3 * len(lanes)]
    queue_answers = answers[1 + 3 * len(lanes) :]
    return QueueSnapshot(
        lanes=tuple(
            lane_stats(lane, int(depth), groups, pending, redis_ms)
            for lane, (depth, groups, pending) in zip(lanes, _triples(lane_answers), strict=True)
        ),
        queues=tuple(
            _queue_stats(queue, replies, minutes)
            for queue, replies in zip(queues, _quads(queue_answers), strict=True)
        ),
        at_ms=redis_ms,
    )


def _queue_stats(
    queue: str, replies: tuple[Any, Any, Any, Any], minutes: Sequence[int]
) -> QueueStats:
    """A queue's figures from its ZCARD, XLEN, HMGET (of `counter_fields`) and GET answers."""
    delayed, dead, counts, paused = replies
    completed, failed, per_minute = counters(minutes, counts)
    return QueueStats(
        queue=queue,
        delayed=int(delayed),
        dead_letters=int(dead),
        completed=completed,
        failed=failed,
        minutes=per_minute,
        pause=pause_mark(paused),
    )


class LaneOverview(msgspec.Struct, frozen=True, kw_only=True):
    """One priority lane of a queue, as an overview shows it."""

    priority: Priority
    depth: int
    waiting: int
    active: int
    oldest_pending_age_s: float


class QueueOverview(msgspec.Struct, frozen=True, kw_only=True):
    """A queue at a glance: what waits, runs, is parked and has died; what it did per minute."""

    name: str
    paused: bool
    paused_by: str | None
    paused_since_ms: int | None
    # Entries no worker has read yet, over every lane; `lag` is the same count under the name
    # consumer groups (and autoscalers) give it.
    waiting: int
    active: int
    delayed: int
    completed: int
    # Failed attempts, retried ones included.
    failed: int
    dead: int
    lag: int
    oldest_pending_age_s: float
    # Completed in the last full minute.
    jobs_per_minute: int
    # The last HISTORY_MINUTES full minutes, oldest first, then the current one so far.
    throughput: tuple[MinuteCounts, ...]
    lanes: tuple[LaneOverview, ...]


def overview(snapshot: QueueSnapshot, queue: str) -> QueueOverview:
    """One queue of a snapshot, its lanes summed."""
    stats = next(stats for stats in snapshot.queues if stats.queue == queue)
    lanes = [lane for lane in snapshot.lanes if lane.queue == queue]
    waiting = sum(lane.lag for lane in lanes)
    return QueueOverview(
        name=queue,
        paused=stats.paused,
        paused_by=stats.pause.by if stats.pause else None,
        paused_since_ms=stats.pause.at_ms if stats.pause else None,
        waiting=waiting,
        active=sum(lane.pending for lane in lanes),
        delayed=stats.delayed,
        completed=stats.completed,
        failed=stats.failed,
        dead=stats.dead_letters,
        lag=waiting,
        oldest_pending_age_s=max((lane.oldest_pending_age_s for lane in lanes), default=0.0),
        jobs_per_minute=stats.minutes[-2].completed if len(stats.minutes) > 1 else 0,
        throughput=stats.minutes,
        lanes=tuple(
            LaneOverview(
                priority=lane.priority,
                depth=lane.depth,
                waiting=lane.lag,
                active=lane.pending,
                oldest_pending_age_s=lane.oldest_pending_age_s,
            )
            for lane in lanes
        ),
    )


async def pause(redis: Redis, queue: str, mark: PauseMark) -> bool:
    """Pause `queue`; True if this paused it, False if it was paused already (kept as it was,
    so that who paused it and since when stay true)."""
    return bool(await redis.set(QueueKeys(queue).paused, msgspec.json.encode(mark), nx=True))


async def resume(redis: Redis, queue: str) -> bool:
    """Let workers start `queue`'s jobs again; True if it was paused."""
    return bool(await redis.delete(QueueKeys(queue).paused))


async def paused_queues(redis: Redis, queues: Sequence[str]) -> frozenset[str]:
    """Which of `queues` are paused now, in one round trip."""
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            pipe.exists(QueueKeys(queue).paused)
        answers: list[int] = await pipe.execute()
    return frozenset(queue for queue, exists in zip(queues, answers, strict=True) if exists)
