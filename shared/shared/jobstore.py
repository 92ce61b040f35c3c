"""The Redis job store: every job state change is one Lua script, with its event, atomically.

This module owns the Lua scripts (in `lua/`) and the record layout of a job hash. Every change
that moves a job also writes its lifecycle event in the same script, so no crash can leave a job
moved without its event, or an event without its move. Completion, retry, progress and dead-letter
are fenced by the attempt's token: a late answer from an attempt that was reclaimed is refused.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, NamedTuple

import msgspec
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.coalesce import Coalescer
from shared.contracts.codec import encoder
from shared.contracts.events import (
    ErrorInfo,
    JobCancelled,
    JobCompleted,
    JobDeadLettered,
    JobProgressed,
    JobQueued,
    JobRetrying,
    JobStarted,
)
from shared.contracts.jobs import (
    PRIORITIES,
    AttemptError,
    DeadLetter,
    JobEnvelope,
    JobState,
    JobView,
)
from shared.scripts import load_scripts
from shared.streams import DATA_FIELD, WORKER_GROUP, Lane, QueueKeys, role_room, user_room
from shared.telemetry import current_trace

_SCRIPTS = (
    "enqueue",
    "start",
    "progress",
    "complete",
    "retry",
    "dead_letter",
    "reject",
    "promote",
    "renew",
    "reclaim",
    "hand_back",
    "cancel",
    "remove",
    "sweep",
    "revive",
)
# Idle for ten years: past any worker's visibility timeout, whatever each one is set to.
HAND_BACK_IDLE_MS = 10 * 365 * 24 * 3600 * 1000
_errors_decoder = msgspec.json.Decoder(tuple[AttemptError, ...])
# How far ahead of a record's expiry the sweeper drops it from the listing indexes.
SWEEP_AHEAD_MS = 60_000
# The most jobs one batched start or completion script takes: it blocks Redis while it runs.
MAX_BATCH_JOBS = 100
# How many minutes of per-minute counters a queue keeps: two hours, for throughput charts.
COUNTED_MINUTES = 120


class StartOutcome(enum.Enum):
    """What `JobStore.start` found."""

    STARTED = 1
    """The attempt is fenced under its token and may run."""
    FINISHED = 0
    """The job was cancelled or already finished: ack the entry and skip it."""
    NOT_OURS = -1
    """Another worker reclaimed the entry: leave it alone."""


class _Step(NamedTuple):
    """One job's part of a batched script call: its keys and its arguments."""

    keys: tuple[str, ...]
    args: tuple[str | int | bytes, ...]


class Reclaimed(msgspec.Struct, frozen=True):
    """An entry taken over from a worker that stopped renewing its lease."""

    entry_id: str
    data: bytes
    deliveries: int


class StoreSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Retention and history bounds of the job store (`JOBS_*`)."""

    env_prefix: ClassVar[str] = "JOBS_"

    # How long a finished job's record stays readable: completed (and cancelled), and dead.
    completed_ttl_s: Annotated[int, msgspec.Meta(ge=1)] = 24 * 3600
    failed_ttl_s: Annotated[int, msgspec.Meta(ge=1)] = 7 * 24 * 3600
    # About how many lifecycle events each queue's events stream keeps for catching up.
    events_maxlen: Annotated[int, msgspec.Meta(ge=100)] = 100_000
    idempotency_ttl_s: Annotated[int, msgspec.Meta(ge=1)] = 24 * 3600


def event_rooms(owner: str, entity: str | None = None) -> tuple[str, ...]:
    """Where a job's events go: its owner, every admin, and whoever watches its entity."""
    rooms = (user_room(owner), role_room("ADMIN"))
    return rooms if entity is None else (*rooms, f"entity:{entity}")


class JobStore:
    """Reads and moves jobs in Redis."""

    def __init__(self, redis: Redis, settings: StoreSettings | None = None) -> None:
        self._redis = redis
        self._settings = settings or StoreSettings()
        self._scripts = load_scripts(redis, _SCRIPTS)
        self._starts: dict[tuple[str, str], Coalescer[_Step, StartOutcome]] = {}
        self._completions: dict[str, Coalescer[_Step, bool]] = {}

    @property
    def settings(self) -> StoreSettings:
        """Retention and history bounds this store writes with."""
        return self._settings

    def retain(
        self, *, completed_ttl_s: int | None = None, failed_ttl_s: int | None = None
    ) -> None:
        """Keep the records of jobs that finish from now on this long (the runtime settings)."""
        self._settings = msgspec.structs.replace(
            self._settings,
            completed_ttl_s=completed_ttl_s or self._settings.completed_ttl_s,
            failed_ttl_s=failed_ttl_s or self._settings.failed_ttl_s,
        )

    async def ensure_group(self, lane: Lane) -> None:
        """Create the worker group at id 0, so entries written before it existed are read too."""
        try:
            await self._redis.xgroup_create(lane.stream, WORKER_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def enqueue(
        self, envelope: JobEnvelope, *, idempotency_key: str | None = None
    ) -> tuple[str, bool]:
        """Store a job and queue it, or park it until `envelope.due_at_ms` when that is later.

        Returns its id and whether it is new (False: the Idempotency-Key was seen before).
        """
        keys, args = self._enqueue_call(envelope, idempotency_key)
        job_id, created = await self._scripts["enqueue"](keys=keys, args=args)
        return _text(job_id), bool(created)

    async def enqueue_batch(self, envelopes: Sequence[JobEnvelope]) -> None:
        """Store and queue several jobs of one queue in one MULTI/EXEC: all of them or none."""
        if len({envelope.queue for envelope in envelopes}) > 1:
            raise ValueError("a batch is atomic on one queue only")
        async with self._redis.pipeline(transaction=True) as pipe:
            for envelope in envelopes:
                keys, args = self._enqueue_call(envelope, None)
                await self._scripts["enqueue"](keys=keys, args=args, client=pipe)
            await pipe.execute()

    def _enqueue_call(
        self, envelope: JobEnvelope, idempotency_key: str | None
    ) -> tuple[list[str], list[str | int | bytes]]:
        keys = QueueKeys(envelope.queue)
        job_key = keys.job(envelope.id)
        idem_key = keys.idempotency(envelope.owner, idempotency_key) if idempotency_key else job_key
        delayed = envelope.due_at_ms > envelope.enqueued_at_ms
        queued = JobQueued(
            **self._event_base(envelope, envelope.enqueued_at_ms),
            run_at_ms=envelope.due_at_ms if delayed else None,
        )
        return (
            [
                job_key,
                keys.stream_of(envelope.priority),
                keys.events,
                idem_key,
                keys.delayed,
                keys.jobs,
                keys.owner_jobs(envelope.owner),
            ],
            [
                envelope.id,
                encoder.encode(envelope),
                encoder.encode(queued),
                self._settings.idempotency_ttl_s if idempotency_key else 0,
                self._settings.events_maxlen,
                DATA_FIELD,
                envelope.due_at_ms if delayed else 0,
                envelope.enqueued_at_ms,
                *job_record(envelope),
            ],
        )

    async def cancel(self, job: JobView, by: str, now_ms: int) -> bool:
        """Cancel a job that waits; False when it is running or finished (too late)."""
        keys = QueueKeys(job.queue)
        event = JobCancelled(
            job_id=job.id,
            type=job.type,
            queue=job.queue,
            owner=job.owner,
            rooms=event_rooms(job.owner, job.entity),
            at_ms=now_ms,
            trace=current_trace(),
            by=by,
        )
        outcome = await self._scripts["cancel"](
            keys=[keys.job(job.id), keys.delayed, keys.events, keys.expiring],
            args=[
                job.id,
                now_ms,
                encoder.encode(event),
                self._settings.completed_ttl_s,
                self._settings.events_maxlen,
                DATA_FIELD,
            ],
        )
        return int(outcome) == 1

    async def get(self, queues: Sequence[str], job_id: str) -> JobView | None:
        """The job with this id on any of these queues, or None."""
        async with self._redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.hgetall(QueueKeys(queue).job(job_id))
            found: list[dict[bytes, bytes]] = await pipe.execute()
        for record in found:
            if record.get(b"state"):
                return record_view(record)
        return None

    async def start(
        self, envelope: JobEnvelope, token: str, now_ms: int, *, entry_id: str, consumer: str
    ) -> StartOutcome:
        """Begin an attempt under `token`, if the entry is still this consumer's to run.

        Starts of one queue and consumer that come together go to Redis in one batch.
        """
        keys = QueueKeys(envelope.queue)
        started = JobStarted(**self._event_base(envelope, now_ms), attempt=envelope.attempt)
        step = _Step(
            keys=(keys.job(envelope.id), keys.stream_of(envelope.priority)),
            args=(token, envelope.attempt, now_ms, encoder.encode(started), entry_id),
        )
        starts = self._starts.get((envelope.queue, consumer))
        if starts is None:
            starts = Coalescer(
                functools.partial(self._start_batch, envelope.queue, consumer),
                max_batch=MAX_BATCH_JOBS,
            )
            self._starts[envelope.queue, consumer] = starts
        return await starts.submit(step)

    async def _start_batch(
        self, queue: str, consumer: str, steps: list[_Step]
    ) -> list[StartOutcome]:
        keys: list[str] = [QueueKeys(queue).events]
        args: list[str | int | bytes] = [
            self._settings.events_maxlen,
            DATA_FIELD,
            WORKER_GROUP,
            consumer,
        ]
        for step in steps:
            keys += step.keys
            args += step.args
        outcomes = await self._scripts["start"](keys=keys, args=args)
        return [StartOutcome(int(outcome)) for outcome in outcomes]

    async def progress(
        self, envelope: JobEnvelope, token: str, value: float, message: str, now_ms: int
    ) -> bool:
        """Record progress of the attempt holding `token`; False when that attempt is stale."""
        keys = QueueKeys(envelope.queue)
        event = JobProgressed(
            **self._event_base(envelope, now_ms),
            attempt=envelope.attempt,
            progress=value,
            message=message,
        )
        return bool(
            await self._scripts["progress"](
                keys=[keys.job(envelope.id), keys.events],
                args=[
                    token,
                    value,
                    encoder.encode(event),
                    self._settings.events_maxlen,
                    DATA_FIELD,
                ],
            )
        )

    async def complete(
        self,
        envelope: JobEnvelope,
        token: str,
        entry_id: str,
        result: Any,
        now_ms: int,
        *,
        follow_up: JobEnvelope | None = None,
    ) -> bool:
        """Commit a successful attempt, and queue `follow_up` with it; False when stale.

        Completions of one queue that come together go to Redis in one batch, each fenced on
        its own.
        """
        keys = QueueKeys(envelope.queue)
        follow_keys, follow_args = self._follow_up(envelope, follow_up)
        event = JobCompleted(
            **self._event_base(envelope, now_ms), attempt=envelope.attempt, result=result
        )
        step = _Step(
            keys=(keys.job(envelope.id), keys.stream_of(envelope.priority), *follow_keys),
            args=(
                token,
                entry_id,
                now_ms,
                encoder.encode(result),
                encoder.encode(event),
                envelope.id,
                len(follow_args),
                *follow_args,
            ),
        )
        completions = self._completions.get(envelope.queue)
        if completions is None:
            completions = Coalescer(
                functools.partial(self._complete_batch, envelope.queue), max_batch=MAX_BATCH_JOBS
            )
            self._completions[envelope.queue] = completions
        return await completions.submit(step)

    async def _complete_batch(self, queue: str, steps: list[_Step]) -> list[bool]:
        queue_keys = QueueKeys(queue)
        keys: list[str] = [
            queue_keys.events,
            queue_keys.counts,
            queue_keys.expiring,
            queue_keys.jobs,
        ]
        args: list[str | int | bytes] = [
            WORKER_GROUP,
            self._settings.completed_ttl_s,
            self._settings.events_maxlen,
            DATA_FIELD,
        ]
        for step in steps:
            keys += step.keys
            args += step.args
        outcomes = await self._scripts["complete"](keys=keys, args=args)
        return [bool(outcome) for outcome in outcomes]

    async def retry(
        self,
        envelope: JobEnvelope,
        token: str,
        entry_id: str,
        error: AttemptError,
        *,
        due_ms: int,
        now_ms: int,
    ) -> bool:
        """Park a failed attempt's job until `due_ms`, as its next attempt; False when stale."""
        keys = QueueKeys(envelope.queue)
        errors = (*envelope.errors, error)
        following = msgspec.structs.replace(envelope, attempt=envelope.attempt + 1, errors=errors)
        event = JobRetrying(
            **self._event_base(envelope, now_ms),
            attempt=envelope.attempt,
            retry_at_ms=due_ms,
            error=ErrorInfo(message=error.message, detail=error.detail),
        )
        return bool(
            await self._scripts["retry"](
                keys=[
                    keys.job(envelope.id),
                    keys.stream_of(envelope.priority),
                    keys.delayed,
                    keys.events,
                    keys.counts,
                ],
                args=[
                    token,
                    entry_id,
                    WORKER_GROUP,
                    due_ms,
                    encoder.encode(errors),
                    encoder.encode(following),
                    encoder.encode(event),
                    self._settings.events_maxlen,
                    DATA_FIELD,
                    envelope.id,
                    now_ms,
                ],
            )
        )

    async def dead_letter(
        self,
        envelope: JobEnvelope,
        token: str,
        entry_id: str,
        error: AttemptError,
        now_ms: int,
        *,
        follow_up: JobEnvelope | None = None,
    ) -> bool:
        """Move a job to the dead letters, and queue `follow_up` with it; False when stale."""
        keys = QueueKeys(envelope.queue)
        follow_keys, follow_args = self._follow_up(envelope, follow_up)
        errors = (*envelope.errors, error)
        letter = DeadLetter(
            reason=error.message, job=envelope, source_entry=entry_id, errors=errors, at_ms=now_ms
        )
        event = JobDeadLettered(
            **self._event_base(envelope, now_ms),
            attempt=envelope.attempt,
            error=ErrorInfo(message=error.message, detail=error.detail),
        )
        return bool(
            await self._scripts["dead_letter"](
                keys=[
                    keys.job(envelope.id),
                    keys.stream_of(envelope.priority),
                    keys.dead,
                    keys.events,
                    keys.counts,
                    keys.expiring,
                    keys.jobs,
                    *follow_keys,
                ],
                args=[
                    token,
                    entry_id,
                    WORKER_GROUP,
                    now_ms,
                    encoder.encode(errors),
                    encoder.encode(letter),
                    encoder.encode(event),
                    self._settings.failed_ttl_s,
                    self._settings.events_maxlen,
                    DATA_FIELD,
                    envelope.id,
                    *follow_args,
                ],
            )
        )

    async def reject(self, lane: Lane, entry_id: str, raw: str, reason: str, now_ms: int) -> None:
        """Dead-letter a stream entry that cannot be run at all, with the reason, and ack it."""
        letter = DeadLetter(reason=reason, raw=raw, source_entry=entry_id, at_ms=now_ms)
        await self._scripts["reject"](
            keys=[lane.stream, QueueKeys(lane.queue).dead],
            args=[entry_id, WORKER_GROUP, encoder.encode(letter), DATA_FIELD],
        )

    async def discard(self, lane: Lane, entry_id: str) -> None:
        """Ack and drop an entry whose job needs no run: cancelled or already finished."""
        stream = lane.stream
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xack(stream, WORKER_GROUP, entry_id)
            pipe.xdel(stream, entry_id)
            await pipe.execute()

    async def renew(self, lane: Lane, consumer: str, entry_ids: Sequence[str]) -> int:
        """Reset the idle time of the entries `consumer` still holds; returns how many."""
        if not entry_ids:
            return 0
        renewed = await self._scripts["renew"](
            keys=[lane.stream], args=[WORKER_GROUP, consumer, *entry_ids]
        )
        return int(renewed)

    async def reclaim(
        self, lane: Lane, consumer: str, *, min_idle_ms: int, count: int
    ) -> list[Reclaimed]:
        """Take over up to `count` entries idle for `min_idle_ms`: their holder has died."""
        taken = await self._scripts["reclaim"](
            keys=[lane.stream],
            args=[WORKER_GROUP, consumer, min_idle_ms, count, DATA_FIELD],
        )
        return [
            Reclaimed(_text(entry_id), bytes(data), int(deliveries))
            for entry_id, data, deliveries in taken
        ]

    async def hand_back(self, lane: Lane, consumer: str) -> int:
        """Make every entry `consumer` holds claimable by other workers now; returns how many."""
        handed = await self._scripts["hand_back"](
            keys=[lane.stream], args=[WORKER_GROUP, consumer, HAND_BACK_IDLE_MS, 10_000]
        )
        return int(handed)

    async def promote_due(self, queue: str, now_ms: int, batch: int = 500) -> int:
        """Move up to `batch` delayed jobs that are due onto the stream; returns how many moved."""
        keys = QueueKeys(queue)
        moved = await self._scripts["promote"](
            keys=[keys.delayed, *(keys.stream_of(priority) for priority in PRIORITIES)],
            args=[now_ms, batch, keys.job(""), DATA_FIELD],
        )
        return int(moved)

    async def revive(
        self, letter_id: str, envelope: JobEnvelope, *, audit: bytes, audit_maxlen: int
    ) -> int:
        """Queue a dead-lettered job again as `envelope` (its first attempt, due now), deleting
        the dead letter and appending `audit` to the audit stream, atomically.

        Returns 1 when replayed, -1 when the dead letter is gone, 0 when the job lives on.
        """
        keys = QueueKeys(envelope.queue)
        queued = JobQueued(**self._event_base(envelope, envelope.enqueued_at_ms))
        outcome = await self._scripts["revive"](
            keys=[
                keys.job(envelope.id),
                keys.stream_of(envelope.priority),
                keys.dead,
                keys.events,
                keys.jobs,
                keys.owner_jobs(envelope.owner),
                keys.expiring,
                keys.audit,
            ],
            args=[
                letter_id,
                encoder.encode(envelope),
                encoder.encode(queued),
                envelope.id,
                envelope.enqueued_at_ms,
                self._settings.events_maxlen,
                DATA_FIELD,
                audit,
                audit_maxlen,
                *job_record(envelope),
                "errors",
                encoder.encode(envelope.errors),
            ],
        )
        return int(outcome)

    async def dead_letter_of(self, job: JobView) -> str | None:
        """The id of a dead job's entry on its queue's dead-letter stream, if it is still there."""
        entry = await self._redis.hget(QueueKeys(job.queue).job(job.id), "dead_entry")
        return None if entry is None else _text(entry)

    async def remove(self, job: JobView) -> bool:
        """Delete a finished job's record, index entries and dead letter; False if unfinished."""
        keys = QueueKeys(job.queue)
        outcome = await self._scripts["remove"](
            keys=[
                keys.job(job.id),
                keys.jobs,
                keys.owner_jobs(job.owner),
                keys.expiring,
                keys.dead,
            ],
            args=[job.id],
        )
        return int(outcome) == 1

    async def sweep(self, queue: str, now_ms: int, batch: int = 1000) -> int:
        """Drop finished jobs from the listing indexes as their records expire, and per-minute
        counters past `COUNTED_MINUTES`; returns how many jobs left the indexes."""
        keys = QueueKeys(queue)
        # The sweeper looks ahead, so that it still finds each job's owner in its record.
        owner_before, owner_after = keys.owner_jobs("\0").split("\0")
        swept = await self._scripts["sweep"](
            keys=[keys.expiring, keys.jobs, keys.counts],
            args=[
                now_ms + SWEEP_AHEAD_MS,
                batch,
                keys.job(""),
                owner_before,
                owner_after,
                now_ms // 60_000 - COUNTED_MINUTES,
            ],
        )
        return int(swept)

    def _follow_up(
        self, finished: JobEnvelope, follow_up: JobEnvelope | None
    ) -> tuple[list[str], list[str | int | bytes]]:
        """The extra keys and arguments by which a finishing script queues a follow-up job."""
        keys = QueueKeys(finished.queue)
        if follow_up is None:
            return [keys.job(finished.id), keys.stream, keys.jobs], [""]
        if follow_up.queue != finished.queue or follow_up.due_at_ms > follow_up.enqueued_at_ms:
            raise ValueError("a follow-up job runs now, on the queue of the job it follows")
        queued = JobQueued(**self._event_base(follow_up, follow_up.enqueued_at_ms))
        return (
            [
                keys.job(follow_up.id),
                keys.stream_of(follow_up.priority),
                keys.owner_jobs(follow_up.owner),
            ],
            [
                encoder.encode(follow_up),
                follow_up.id,
                follow_up.enqueued_at_ms,
                encoder.encode(queued),
                *job_record(follow_up),
            ],
        )

    @staticmethod
    def _event_base(envelope: JobEnvelope, at_ms: int) -> dict[str, Any]:
        return {
            "job_id": envelope.id,
            "type": envelope.type,
            "queue": envelope.queue,
            "owner": envelope.owner,
            "rooms": event_rooms(envelope.owner, envelope.entity),
            "at_ms": at_ms,
            "trace": current_trace(),
        }


def job_record(envelope: JobEnvelope) -> list[str | int | bytes]:
    """A new job's record, as the flat field/value list HSET takes."""
    record: dict[str, str | int | bytes] = {
        "id": envelope.id,
        "type": envelope.type,
        "queue": envelope.queue,
        "priority": envelope.priority,
        "owner": envelope.owner,
        "attempt": 0,
        "max_attempts": envelope.max_attempts,
        "created_ms": envelope.enqueued_at_ms,
        # Kept after the envelope goes, so that a finished job still shows what it was asked.
        "payload": bytes(envelope.payload),
    }
    if envelope.entity is not None:
        record["entity"] = envelope.entity
    return [part for pair in record.items() for part in pair]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _optional_int(record: dict[bytes, bytes], field: bytes) -> int | None:
    value = record.get(field)
    return int(value) if value else None


def record_view(record: dict[bytes, bytes]) -> JobView:
    """A job's record, as `GET /v1/jobs/{id}` shows it."""
    state: JobState = _text(record[b"state"])  # type: ignore[assignment]
    progress = record.get(b"progress")
    result = record.get(b"result")
    payload = record.get(b"payload")
    errors = record.get(b"errors")
    return JobView(
        id=_text(record[b"id"]),
        type=_text(record[b"type"]),
        queue=_text(record[b"queue"]),
        priority=_text(record.get(b"priority", b"normal")),  # type: ignore[arg-type]
        owner=_text(record[b"owner"]),
        entity=_text(record[b"entity"]) if b"entity" in record else None,
        state=state,
        attempt=int(record[b"attempt"]),
        max_attempts=int(record[b"max_attempts"]),
        progress=float(progress) if progress else None,
        result=msgspec.json.decode(result) if result else None,
        payload=msgspec.json.decode(payload) if payload else None,
        errors=_errors_decoder.decode(errors) if errors else (),
        created_at_ms=int(record[b"created_ms"]),
        started_at_ms=_optional_int(record, b"started_ms"),
        finished_at_ms=_optional_int(record, b"finished_ms"),
    )
