"""The job state machine of the store's Lua scripts, driven at random against a real Redis.

A model tracks each job's state, its stream entry, who holds that entry and which attempt tokens
are current or stale; after every step the whole of Redis (records, queue stream, pending
entries, delayed set, events, dead letters) must match it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, cast

import msgspec
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from redis.asyncio import Redis

from shared.clock import now_ms
from shared.contracts.codec import envelope_decoder, event_decoder
from shared.contracts.jobs import (
    CANCELLABLE_STATES,
    FINISHED_STATES,
    AttemptError,
    JobEnvelope,
    JobState,
    JobView,
)
from shared.jobstore import JobStore, StartOutcome
from shared.streams import DATA_FIELD, WORKER_GROUP, Lane, QueueKeys, entry_order
from tests.streams import read_group

T = TypeVar("T")

QUEUE = "default"
KEYS = QueueKeys(QUEUE)
# Every job here has the normal priority, whose lane is the queue's plain stream.
LANE = Lane(QUEUE)
CONSUMERS = ("a", "b")
MAX_UNFINISHED = 4
# A delayed job, or a retry parked "later", is due this long after the machine's base time;
# promoting at the base time moves only retries parked in the past, promoting far ahead moves all.
LATER_MS = 60_000
FAR_AHEAD_MS = 10 * 24 * 3600 * 1000
WAITING_STATES: frozenset[JobState] = frozenset({"delayed", "retrying"})


@dataclass(frozen=True)
class Attempt:
    """A started attempt: its token, the entry it runs from and the envelope it read."""

    token: str
    entry: str
    envelope: JobEnvelope


@dataclass
class ModelJob:
    """What the store should hold for one job."""

    envelope: JobEnvelope
    state: JobState
    attempt: int = 0
    next_attempt: int = 1
    due_ms: int | None = None
    entry: str | None = None
    current: Attempt | None = None
    stale: list[Attempt] = field(default_factory=list)
    errors: tuple[AttemptError, ...] = ()
    result: Any = None
    events: list[str] = field(default_factory=list)
    finished_record: dict[bytes, bytes] | None = None


@dataclass
class ModelEntry:
    """An entry on the queue stream: its job, and who holds it (None: not delivered yet)."""

    job_id: str
    holder: str | None = None
    deliveries: int = 0


@dataclass(frozen=True)
class Observed:
    """Everything the store holds, minus what moves with the clock (idle times, TTL values)."""

    records: dict[str, dict[bytes, bytes]]
    ttl_ms: dict[str, int]
    stream: tuple[str, ...]
    pending: dict[str, tuple[str, int]]
    delayed: dict[str, float]
    # The events stream's length and newest id: enough to see that nothing was appended.
    events: tuple[int, bytes | None]
    dead: int

    def unchanged(self) -> tuple[object, ...]:
        """The parts compared before and after a refused call; TTLs count down, so as signs."""
        expiring = {job_id: ttl > 0 for job_id, ttl in self.ttl_ms.items()}
        return (
            self.records,
            expiring,
            self.stream,
            self.pending,
            self.delayed,
            self.events,
            self.dead,
        )


def event_kind(data: bytes) -> tuple[str, str]:
    """(job id, event tag) of an events-stream entry."""
    event = event_decoder.decode(data)
    return event.job_id, str(type(event).__struct_config__.tag)


class JobLifecycle(RuleBasedStateMachine):
    """Random walks through enqueue, delivery, attempts, fencing, cancel, promote and reclaim."""

    redis_url: ClassVar[str]

    def __init__(self) -> None:
        super().__init__()
        # A loop of our own per example; with a loop factory the Runner leaves the thread's
        # current loop (pytest-asyncio's session loop) alone.
        self._loop = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        self._redis = self._run(self._connect(self.redis_url))
        self._store = JobStore(self._redis)
        self._run(self._store.ensure_group(LANE))
        self._base_ms = now_ms()
        self._jobs: dict[str, ModelJob] = {}
        self._entries: dict[str, ModelEntry] = {}
        self._envelopes: dict[str, JobEnvelope] = {}
        self._dead = 0
        self._events: dict[str, list[str]] = {}
        self._events_read_to = ""
        self._failures = 0

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coro)

    @staticmethod
    async def _connect(redis_url: str) -> Redis:
        client = Redis.from_url(redis_url)
        await client.flushall()
        return client

    def teardown(self) -> None:
        self._run(self._redis.aclose())
        self._loop.close()

    # -- reading the store -------------------------------------------------------------------

    async def _observe(self) -> Observed:
        ids = sorted(self._jobs)
        # One round trip: the check runs after every step, and redis-py's cost is per call.
        async with self._redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(KEYS.job(job_id))
                pipe.pttl(KEYS.job(job_id))
            pipe.xrange(KEYS.stream)
            pipe.xpending_range(KEYS.stream, WORKER_GROUP, "-", "+", 1000)
            pipe.zrange(KEYS.delayed, 0, -1, withscores=True)
            pipe.xlen(KEYS.events)
            pipe.xrevrange(KEYS.events, count=1)
            pipe.xlen(KEYS.dead)
            answers: list[Any] = await pipe.execute()
        per_job, rest = answers[: 2 * len(ids)], answers[2 * len(ids) :]
        stream, pending_rows, delayed, events_length, newest_event, dead = rest
        return Observed(
            records=dict(zip(ids, per_job[0::2], strict=True)),
            ttl_ms={job_id: int(ttl) for job_id, ttl in zip(ids, per_job[1::2], strict=True)},
            stream=tuple(entry_id.decode() for entry_id, _ in stream),
            pending={
                row["message_id"].decode(): (row["consumer"].decode(), int(row["times_delivered"]))
                for row in pending_rows
            },
            delayed={member.decode(): score for member, score in delayed},
            events=(int(events_length), newest_event[0][0] if newest_event else None),
            dead=int(dead),
        )

    async def _new_events(self) -> list[tuple[str, str]]:
        """(job id, kind) of every event appended since the last call, oldest first."""
        since = f"({self._events_read_to}" if self._events_read_to else "-"
        raw = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]", await self._redis.xrange(KEYS.events, since)
        )
        if raw:
            self._events_read_to = raw[-1][0].decode()
        return [event_kind(fields[DATA_FIELD.encode()]) for _, fields in raw]

    def _snapshot(self) -> tuple[object, ...]:
        return self._run(self._observe()).unchanged()

    def _view(self, job_id: str) -> JobView:
        view = self._run(self._store.get([QUEUE], job_id))
        assert view is not None
        return view

    def _add_entry(self, job: ModelJob) -> None:
        """Learn the entry the store just put `job` on, and the envelope it carries."""
        entry, envelope = self._run(self._entry_of(job.envelope.id))
        assert envelope.id == job.envelope.id
        self._envelopes[entry] = envelope
        self._entries[entry] = ModelEntry(job.envelope.id)
        job.entry = entry

    async def _entry_of(self, job_id: str) -> tuple[str, JobEnvelope]:
        raw = await cast("Awaitable[bytes | None]", self._redis.hget(KEYS.job(job_id), "entry"))
        assert raw is not None
        entry = raw.decode()
        [(found, fields)] = cast(
            "list[tuple[bytes, dict[bytes, bytes]]]",
            await self._redis.xrange(KEYS.stream, entry, entry),
        )
        assert found.decode() == entry
        return entry, envelope_decoder.decode(fields[DATA_FIELD.encode()])

    async def _record(self, job_id: str) -> dict[bytes, bytes]:
        return await cast("Awaitable[dict[bytes, bytes]]", self._redis.hgetall(KEYS.job(job_id)))

    def _finish(self, job: ModelJob, state: JobState, event: str) -> None:
        job.state = state
        job.events.append(event)
        self._check_view(job)
        job.finished_record = self._run(self._record(job.envelope.id))

    def _check_view(self, job: ModelJob) -> None:
        """What `GET /v1/jobs/{id}` would show matches the model."""
        view = self._run(self._store.get([QUEUE], job.envelope.id))
        assert view is not None
        assert (view.state, view.attempt) == (job.state, job.attempt), view.id
        assert view.errors == job.errors, view.id
        assert view.result == job.result, view.id

    def _end_attempt(self, job: ModelJob) -> None:
        """The current attempt's entry is acked and deleted, and its token becomes stale."""
        attempt = job.current
        assert attempt is not None
        job.stale.append(attempt)
        job.current = None
        del self._entries[attempt.entry]
        job.entry = None

    def _undelivered(self) -> bool:
        return any(entry.holder is None for entry in self._entries.values())

    def _held(self) -> bool:
        return any(entry.holder is not None for entry in self._entries.values())

    def _started(self) -> list[str]:
        """Jobs that have had an attempt: they have stale tokens, or a current one to fake."""
        return sorted(job_id for job_id, job in self._jobs.items() if job.stale or job.current)

    def _running(self) -> list[str]:
        return sorted(job_id for job_id, job in self._jobs.items() if job.current is not None)

    def _next_error(self, attempt: Attempt) -> AttemptError:
        self._failures += 1
        return AttemptError(
            attempt=attempt.envelope.attempt, message=f"failure {self._failures}", at_ms=now_ms()
        )

    # -- rules -------------------------------------------------------------------------------

    # Finished jobs make room for new ones: with every job finished, enqueue is what is left.
    @precondition(
        lambda self: (
            sum(j.state not in FINISHED_STATES for j in self._jobs.values()) < MAX_UNFINISHED
        )
    )
    @rule(delayed=st.booleans())
    def enqueue(self, delayed: bool) -> None:
        due_ms = self._base_ms + LATER_MS if delayed else self._base_ms
        envelope = JobEnvelope(
            id=f"job-{len(self._jobs)}",
            type="demo.echo",
            queue=QUEUE,
            owner="alice",
            max_attempts=3,
            enqueued_at_ms=self._base_ms,
            due_at_ms=due_ms,
            payload=msgspec.Raw(b'{"text":"hi"}'),
        )
        assert self._run(self._store.enqueue(envelope)) == (envelope.id, True)
        job = ModelJob(envelope=envelope, state="delayed" if delayed else "queued")
        job.events.append("job.queued")
        self._jobs[envelope.id] = job
        if delayed:
            job.due_ms = due_ms
        else:
            self._add_entry(job)

    @precondition(lambda self: self._undelivered())
    @rule(consumer=st.sampled_from(CONSUMERS))
    def read(self, consumer: str) -> None:
        self._read(consumer)

    @precondition(lambda self: self._undelivered())
    @rule(consumer=st.sampled_from(CONSUMERS))
    def read_and_start(self, consumer: str) -> None:
        entry = self._read(consumer)
        if entry is not None:
            self._start(entry, consumer)

    @precondition(lambda self: self._held())
    @rule(data=st.data())
    def start_held_entry(self, data: st.DataObject) -> None:
        held = sorted((e for e, m in self._entries.items() if m.holder), key=entry_order)
        entry = data.draw(st.sampled_from(held), "entry")
        holder = self._entries[entry].holder
        assert holder is not None
        self._start(entry, holder)

    @precondition(lambda self: bool(self._envelopes))
    @rule(data=st.data(), consumer=st.sampled_from(CONSUMERS))
    def start_any_entry(self, data: st.DataObject, consumer: str) -> None:
        entry = data.draw(st.sampled_from(sorted(self._envelopes, key=entry_order)), "entry")
        self._start(entry, consumer)

    def _read(self, consumer: str) -> str | None:
        got = self._run(read_group(self._redis, KEYS.stream, consumer, count=1))
        waiting = sorted(
            (entry for entry, held in self._entries.items() if held.holder is None),
            key=entry_order,
        )
        if not waiting:
            assert got == []
            return None
        [(entry, data)] = got
        assert entry == waiting[0], "the group delivers the oldest undelivered entry first"
        assert envelope_decoder.decode(data).id == self._entries[entry].job_id
        self._entries[entry].holder = consumer
        self._entries[entry].deliveries = 1
        return entry

    def _start(self, entry: str, consumer: str) -> None:
        envelope = self._envelopes[entry]
        job = self._jobs[envelope.id]
        held = self._entries.get(entry)
        if held is None or held.holder != consumer:
            expected = StartOutcome.NOT_OURS
        elif job.state in ("queued", "active"):
            expected = StartOutcome.STARTED
        else:
            expected = StartOutcome.FINISHED
        before = self._snapshot()
        token = uuid.uuid4().hex

        outcome = self._run(
            self._store.start(envelope, token, now_ms(), entry_id=entry, consumer=consumer)
        )

        assert outcome is expected
        if outcome is not StartOutcome.STARTED:
            assert self._snapshot() == before
        if outcome is StartOutcome.FINISHED:
            # As the runner does: the entry of a job that needs no run is dropped.
            self._run(self._store.discard(LANE, entry))
            del self._entries[entry]
        if outcome is StartOutcome.STARTED:
            assert job.entry == entry
            assert envelope.attempt == job.next_attempt
            assert envelope.errors == job.errors, "the entry carries the job's error history"
            if job.current is not None:
                job.stale.append(job.current)
            job.current = Attempt(token, entry, envelope)
            job.state = "active"
            job.attempt = envelope.attempt
            job.events.append("job.started")

    @precondition(lambda self: bool(self._running()))
    @rule(data=st.data())
    def complete(self, data: st.DataObject) -> None:
        job = self._jobs[data.draw(st.sampled_from(self._running()), "job")]
        attempt = job.current
        assert attempt is not None
        result = {"attempt": attempt.envelope.attempt}
        assert self._run(
            self._store.complete(attempt.envelope, attempt.token, attempt.entry, result, now_ms())
        )
        self._end_attempt(job)
        job.result = result
        self._finish(job, "completed", "job.completed")

    @precondition(lambda self: bool(self._running()))
    @rule(data=st.data(), due_in_past=st.booleans())
    def retry(self, data: st.DataObject, due_in_past: bool) -> None:
        job = self._jobs[data.draw(st.sampled_from(self._running()), "job")]
        attempt = job.current
        assert attempt is not None
        error = self._next_error(attempt)
        due_ms = self._base_ms - 1 if due_in_past else self._base_ms + LATER_MS
        assert self._run(
            self._store.retry(
                attempt.envelope,
                attempt.token,
                attempt.entry,
                error,
                due_ms=due_ms,
                now_ms=now_ms(),
            )
        )
        self._end_attempt(job)
        job.state = "retrying"
        job.errors = (*job.errors, error)
        job.due_ms = due_ms
        job.next_attempt = attempt.envelope.attempt + 1
        job.events.append("job.retrying")

    @precondition(lambda self: bool(self._running()))
    @rule(data=st.data())
    def dead_letter(self, data: st.DataObject) -> None:
        job = self._jobs[data.draw(st.sampled_from(self._running()), "job")]
        attempt = job.current
        assert attempt is not None
        error = self._next_error(attempt)
        assert self._run(
            self._store.dead_letter(attempt.envelope, attempt.token, attempt.entry, error, now_ms())
        )
        self._end_attempt(job)
        job.errors = (*job.errors, error)
        self._dead += 1
        self._finish(job, "dead", "job.dead_lettered")

    @precondition(lambda self: bool(self._started()))
    @rule(data=st.data(), answer=st.sampled_from(["complete", "retry", "dead_letter"]))
    def answer_with_a_stale_token(self, data: st.DataObject, answer: str) -> None:
        job = self._jobs[data.draw(st.sampled_from(self._started()), "job")]
        never_issued = Attempt(uuid.uuid4().hex, job.entry or "0-1", job.envelope)
        attempt = data.draw(st.sampled_from([*job.stale, never_issued]), "stale attempt")
        error = self._next_error(attempt)
        envelope, token, entry = attempt.envelope, attempt.token, attempt.entry
        before = self._snapshot()

        if answer == "complete":
            accepted = self._run(self._store.complete(envelope, token, entry, {}, now_ms()))
        elif answer == "retry":
            accepted = self._run(
                self._store.retry(envelope, token, entry, error, due_ms=0, now_ms=now_ms())
            )
        else:
            accepted = self._run(self._store.dead_letter(envelope, token, entry, error, now_ms()))

        assert not accepted
        assert self._snapshot() == before

    # Only while some job is unfinished: refusing to cancel a finished job again and again
    # would crowd out the steps that reach deeper states.
    @precondition(lambda self: any(j.state not in FINISHED_STATES for j in self._jobs.values()))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        unfinished = sorted(i for i, j in self._jobs.items() if j.state not in FINISHED_STATES)
        any_job = st.sampled_from(sorted(self._jobs))
        job = self._jobs[data.draw(st.sampled_from(unfinished) | any_job, "job")]
        before = self._snapshot()

        cancelled = self._run(self._store.cancel(self._view(job.envelope.id), "alice", now_ms()))

        assert cancelled == (job.state in CANCELLABLE_STATES)
        if not cancelled:
            assert self._snapshot() == before
            return
        # A queued entry stays on the stream; whoever reads it finds the job finished.
        job.due_ms = None
        self._finish(job, "cancelled", "job.cancelled")

    @precondition(lambda self: any(j.state in WAITING_STATES for j in self._jobs.values()))
    @rule(far_ahead=st.booleans())
    def promote_due(self, far_ahead: bool) -> None:
        now = self._base_ms + FAR_AHEAD_MS if far_ahead else self._base_ms
        due = [
            job
            for job in self._jobs.values()
            if job.state in WAITING_STATES and job.due_ms is not None and job.due_ms <= now
        ]

        assert self._run(self._store.promote_due(QUEUE, now)) == len(due)

        for job in due:
            job.state = "queued"
            job.due_ms = None
            self._add_entry(job)

    @precondition(lambda self: self._held())
    @rule(consumer=st.sampled_from(CONSUMERS))
    def reclaim(self, consumer: str) -> None:
        held = {entry: e for entry, e in self._entries.items() if e.holder is not None}

        taken = self._run(self._store.reclaim(LANE, consumer, min_idle_ms=0, count=100))

        assert {t.entry_id for t in taken} == set(held)
        for took in taken:
            model = held[took.entry_id]
            assert envelope_decoder.decode(took.data).id == model.job_id
            assert took.deliveries == model.deliveries + 1
            model.holder = consumer
            model.deliveries += 1

    @precondition(lambda self: self._held())
    @rule(consumer=st.sampled_from(CONSUMERS))
    def hand_back(self, consumer: str) -> None:
        held = [e for e in self._entries.values() if e.holder == consumer]

        assert self._run(self._store.hand_back(LANE, consumer)) == len(held)

        # Handing back is not a failed delivery: the next reclaim's count makes up for it.
        for model in held:
            model.deliveries = max(model.deliveries - 1, 0)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def the_store_holds_what_the_model_says(self) -> None:
        observed = self._run(self._observe())
        for job_id, job in self._jobs.items():
            if job.state in FINISHED_STATES and job.finished_record == observed.records[job_id]:
                # Its record is as it was when it finished (and then the view was checked).
                assert observed.ttl_ms[job_id] > 0, "a finished job must expire"
                continue
            assert job.state not in FINISHED_STATES, f"{job_id} changed after it finished"
            assert observed.ttl_ms[job_id] == -1, "an unfinished job must never expire"
            self._check_view(job)
        assert observed.delayed == {
            job_id: float(job.due_ms)
            for job_id, job in self._jobs.items()
            if job.state in WAITING_STATES and job.due_ms is not None
        }
        assert set(observed.delayed) <= {
            job_id for job_id, job in self._jobs.items() if job.state in WAITING_STATES
        }
        assert set(observed.stream) == set(self._entries)
        assert observed.pending == {
            entry: (held.holder, held.deliveries)
            for entry, held in self._entries.items()
            if held.holder is not None
        }
        assert observed.dead == self._dead
        for job_id, kind in self._run(self._new_events()):
            self._events.setdefault(job_id, []).append(kind)
        for job_id, job in self._jobs.items():
            events = self._events.get(job_id, [])
            assert events == job.events, job_id
            assert events.count("job.completed") <= 1, job_id


def test_every_random_walk_through_the_job_state_machine_matches_the_model(
    redis_url: str,
) -> None:
    class OnTheTestRedis(JobLifecycle):
        pass

    OnTheTestRedis.redis_url = redis_url
    run_state_machine_as_test(
        OnTheTestRedis,
        settings=settings(
            max_examples=40,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
