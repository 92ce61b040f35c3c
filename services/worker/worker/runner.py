"""One delivery of one stream entry, from decoding to a fenced outcome.

The runner never raises for a job's sake: every entry ends completed, parked for a retry or
dead-lettered with a reason, so a bad message can neither crash the consumer nor be dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Literal

import msgspec
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode
from prometheus_client import CollectorRegistry

from shared.clock import now_ms
from shared.contracts.codec import encoder, envelope_decoder
from shared.contracts.commands import CALLBACK_JOB_TYPE, Callback
from shared.contracts.jobs import SYSTEM_OWNER, AttemptError, JobEnvelope, JobOutcome
from shared.jobstore import JobStore, StartOutcome
from shared.logging import bound_to_logs
from shared.streams import Lane
from shared.telemetry import trace_context, tracer
from worker.admission import Admission
from worker.handlers.callbacks import CALLBACK_RETRY
from worker.metrics import JobMetrics
from worker.pause import PauseGate
from worker.ratelimit import RateLimiter
from worker.registry import JobError, PermanentJobError, Registry, UnknownJobTypeError
from worker.retry import RetryPolicy, retry_due_ms

log = logging.getLogger(__name__)

UNEXPECTED_FAILURE = "The job failed unexpectedly."
MAX_DETAIL_CHARS = 8_000


class InvalidPayloadError(PermanentJobError):
    """The payload does not match the job type's contract."""


class JobTimeoutError(JobError):
    """The attempt ran past the job's `timeout_s`; it is retried like any failure."""


class PoisonJobError(PermanentJobError):
    """The job's worker died every time it ran it."""


class _Attempt:
    """The JobContext a handler gets: its job id, attempt number and a fenced progress call."""

    def __init__(self, store: JobStore, envelope: JobEnvelope, token: str) -> None:
        self._store = store
        self._envelope = envelope
        self._token = token

    @property
    def job_id(self) -> str:
        return self._envelope.id

    @property
    def attempt(self) -> int:
        return self._envelope.attempt

    async def progress(self, value: float, message: str = "") -> None:
        value = min(max(value, 0.0), 1.0)
        await self._store.progress(self._envelope, self._token, value, message, now_ms())


class JobRunner:
    """Runs the handler of each delivered job and records its outcome."""

    def __init__(
        self,
        store: JobStore,
        registry: Registry,
        default_retry: RetryPolicy,
        *,
        consumer: str,
        max_deliveries: int,
        limiters: Mapping[str, RateLimiter] | None = None,
        admission: Admission | None = None,
        gate: PauseGate | None = None,
        metrics: JobMetrics | None = None,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self._store = store
        self._registry = registry
        self._default_retry = default_retry
        self._consumer = consumer
        self._max_deliveries = max_deliveries
        self._limiters = dict(limiters or {})
        self._admission = admission
        self._gate = gate or PauseGate()
        self._metrics = metrics or JobMetrics(CollectorRegistry())
        self._clock = clock
        self._in_hand: dict[Lane, set[str]] = {}

    def use_limiters(self, limiters: Mapping[str, RateLimiter]) -> None:
        """Hold starts back to these limiters, by queue, from now on."""
        self._limiters = dict(limiters)

    def use_retry_schedule(self, schedule_s: tuple[float, ...]) -> None:
        """Retry jobs of types without a policy of their own on this schedule from now on."""
        self._default_retry = msgspec.structs.replace(self._default_retry, schedule_s=schedule_s)

    def in_hand(self, lane: Lane) -> list[str]:
        """The entries of `lane` this runner holds now: their leases need renewing."""
        return list(self._in_hand.get(lane, ()))

    async def run(self, lane: Lane, entry_id: str, body: bytes, deliveries: int = 1) -> None:
        """Handle one stream entry of `lane`, delivered `deliveries` times so far.

        The entry is held (and its lease renewed) from here on, also while it waits for its
        queue's resume, a slot or the rate limit; one the gate puts back is left pending.
        """
        held = self._in_hand.setdefault(lane, set())
        held.add(entry_id)
        try:
            async with self._gate.slot(lane, self._admission) as admitted:
                if admitted:
                    await self._run(lane, entry_id, body, deliveries)
        finally:
            held.discard(entry_id)

    async def _run(self, lane: Lane, entry_id: str, body: bytes, deliveries: int) -> None:
        try:
            envelope = envelope_decoder.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("dead-lettering an undecodable entry", extra={"entry": entry_id})
            raw = body.decode(errors="replace")
            await self._store.reject(lane, entry_id, raw, f"undecodable job: {exc}", self._clock())
            return
        with (
            tracer.start_as_current_span(
                f"run {envelope.type}",
                context=trace_context(envelope.trace),
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.destination.name": lane.queue,
                    "conduit.job.id": envelope.id,
                    "conduit.job.attempt": envelope.attempt,
                },
            ),
            bound_to_logs(job_id=envelope.id, user_id=envelope.owner),
        ):
            await self._attempt(lane, entry_id, envelope, deliveries)

    async def _attempt(
        self, lane: Lane, entry_id: str, envelope: JobEnvelope, deliveries: int
    ) -> None:
        limiter = self._limiters.get(lane.queue)
        if limiter is not None:
            # Waiting here keeps the entry in hand, so its lease is renewed meanwhile.
            await limiter.acquire(envelope.type)
        token = uuid.uuid4().hex
        started = await self._store.start(
            envelope, token, self._clock(), entry_id=entry_id, consumer=self._consumer
        )
        if started is StartOutcome.NOT_OURS:
            log.info("another worker reclaimed the entry", extra={"job_id": envelope.id})
            return
        if started is StartOutcome.FINISHED:
            log.info("skipping a job that needs no run", extra={"job_id": envelope.id})
            await self._store.discard(lane, entry_id)
            return
        self._metrics.started(envelope, self._clock())
        if deliveries > self._max_deliveries:
            self._metrics.finished(envelope, 0.0, ok=False)
            died = deliveries - 1
            await self._fail(
                envelope,
                token,
                entry_id,
                PoisonJobError(f"The job stopped its worker {died} times; it will not run again."),
            )
            return
        began = time.perf_counter()
        try:
            result = await self._call_handler(envelope, token)
        except Exception as exc:  # every failure is recorded; none escapes the runner
            self._metrics.finished(envelope, time.perf_counter() - began, ok=False)
            await self._fail(envelope, token, entry_id, exc)
            return
        self._metrics.finished(envelope, time.perf_counter() - began, ok=True)
        now = self._clock()
        follow_up = callback_for(envelope, "completed", now, result=result)
        if not await self._store.complete(
            envelope, token, entry_id, result, now, follow_up=follow_up
        ):
            log.warning("refused a stale attempt's completion", extra={"job_id": envelope.id})

    async def _call_handler(self, envelope: JobEnvelope, token: str) -> Any:
        job_type = self._registry.get(envelope.type)
        if job_type is None:
            raise UnknownJobTypeError(f"this worker runs no job type {envelope.type!r}")
        try:
            payload = msgspec.json.decode(envelope.payload, type=job_type.payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise InvalidPayloadError(f"invalid payload: {exc}") from exc
        deadline = asyncio.timeout(envelope.timeout_s)
        try:
            async with deadline:
                return await job_type.handler(payload, _Attempt(self._store, envelope, token))
        except TimeoutError as exc:
            if deadline.expired():
                raise JobTimeoutError(
                    f"The job took longer than its timeout of {envelope.timeout_s:g} s."
                ) from exc
            raise

    async def _fail(self, envelope: JobEnvelope, token: str, entry_id: str, exc: Exception) -> None:
        now = self._clock()
        error = _describe(exc, envelope.attempt, now)
        trace.get_current_span().set_status(StatusCode.ERROR, error.message)
        job_type = self._registry.get(envelope.type)
        policy = (job_type.retry if job_type else None) or self._default_retry
        due_ms = retry_due_ms(
            policy,
            failed_attempt=envelope.attempt,
            max_attempts=envelope.max_attempts,
            permanent=isinstance(exc, PermanentJobError | UnknownJobTypeError),
            now_ms=now,
            jitter=random.random(),  # noqa: S311 - spreading retries needs no secrecy
        )
        if due_ms is None:
            log.warning(
                "dead-lettering a job", extra={"job_id": envelope.id, "error": error.message}
            )
            self._metrics.dead_lettered(envelope)
            follow_up = callback_for(envelope, "dead", now, error=error.message)
            moved = await self._store.dead_letter(
                envelope, token, entry_id, error, now, follow_up=follow_up
            )
        else:
            log.info("retrying a job", extra={"job_id": envelope.id, "attempt": envelope.attempt})
            self._metrics.retried(envelope)
            moved = await self._store.retry(
                envelope, token, entry_id, error, due_ms=due_ms, now_ms=now
            )
        if not moved:
            log.warning("refused a stale attempt's failure", extra={"job_id": envelope.id})


def callback_for(
    envelope: JobEnvelope,
    state: Literal["completed", "dead"],
    now: int,
    *,
    result: Any = None,
    error: str | None = None,
) -> JobEnvelope | None:
    """The job that POSTs this finished job's outcome to its callback URL, if it has one."""
    if envelope.callback_url is None:
        return None
    outcome = JobOutcome(
        job_id=envelope.id,
        type=envelope.type,
        queue=envelope.queue,
        state=state,
        attempt=envelope.attempt,
        result=result,
        error=error,
        finished_at_ms=now,
    )
    callback = Callback(url=envelope.callback_url, outcome=outcome, job_id=envelope.id)
    return JobEnvelope(
        id=str(uuid.uuid4()),
        type=CALLBACK_JOB_TYPE,
        queue=envelope.queue,
        owner=SYSTEM_OWNER,
        max_attempts=CALLBACK_RETRY.default_max_attempts,
        enqueued_at_ms=now,
        due_at_ms=now,
        payload=msgspec.Raw(encoder.encode(callback)),
    )


def _describe(exc: Exception, attempt: int, at_ms: int) -> AttemptError:
    """The owner sees a handler's own JobError message; admins see the whole traceback."""
    known = isinstance(exc, JobError | UnknownJobTypeError)
    detail = "".join(traceback.format_exception(exc))
    return AttemptError(
        attempt=attempt,
        message=str(exc) if known else UNEXPECTED_FAILURE,
        detail=detail[-MAX_DETAIL_CHARS:],
        at_ms=at_ms,
    )
