"""`/v1/jobs`: submit jobs one by one or in a batch, list and read them, cancel, retry, remove."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter, QueryParameter
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED
from opentelemetry.trace import Span, SpanKind
from redis.asyncio import Redis

from gateway.auth import Principal, admin_only
from gateway.metrics import EnqueueCollector
from gateway.openapi import CONFLICT
from gateway.params import epoch_ms, known_queue
from gateway.problems import problem
from gateway.ratelimit import JobRateLimiter
from gateway.subscriptions import RoomPolicy
from shared.clock import now_ms
from shared.contracts.commands import JOB_PAYLOADS
from shared.contracts.jobs import (
    CANCELLABLE_STATES,
    DEFAULT_MAX_ATTEMPTS,
    BatchAccepted,
    JobAccepted,
    JobBatch,
    JobEnvelope,
    JobState,
    JobSubmission,
    JobView,
)
from shared.deadletters import DeadLetters, Replayed
from shared.joblist import CursorError, JobFilter, JobPage, list_jobs
from shared.jobstore import JobStore
from shared.settings import QueueSettings
from shared.telemetry import current_trace, tracer

JobId = Annotated[str, PathParameter(max_length=100)]
IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        max_length=200,
        description="Repeating a POST with the same key returns the first job.",
    ),
]


class JobController(Controller):
    """Jobs of the calling user; admins may read every job."""

    path = "/v1/jobs"
    tags = ("jobs",)

    @post(status_code=HTTP_202_ACCEPTED, summary="Submit a job")
    async def submit(
        self,
        *,
        request: Request[Principal, Token, Any],
        data: JSONBody[JobSubmission],
        store: NamedDependency[JobStore],
        queues: NamedDependency[QueueSettings],
        enqueued: NamedDependency[EnqueueCollector],
        job_rate: NamedDependency[JobRateLimiter],
        room_policy: NamedDependency[RoomPolicy],
        idempotency_key: IdempotencyKey = None,
    ) -> Response[JobAccepted]:
        """Validate the job against its type's contract and queue it; 202 with its id."""
        try:
            envelope = _envelope(data, request.user.sub, queues, now_ms())
        except ValueError as exc:
            raise problem(422, str(exc)) from exc
        _may_tag(request.user, envelope, room_policy)
        await job_rate.admit(request.user.sub)
        with _enqueuing(envelope.queue, 1):
            envelope = msgspec.structs.replace(envelope, trace=current_trace())
            job_id, created = await store.enqueue(envelope, idempotency_key=idempotency_key)
        headers = {"Location": f"/v1/jobs/{job_id}"}
        if created:
            enqueued.enqueued(envelope.queue, envelope.type)
        else:
            headers["Idempotent-Replayed"] = "true"
        return Response(JobAccepted(id=job_id), status_code=HTTP_202_ACCEPTED, headers=headers)

    @get(summary="List jobs")
    async def list_all(
        self,
        *,
        request: Request[Principal, Token, Any],
        redis: NamedDependency[Redis],
        queues: NamedDependency[QueueSettings],
        job_state: Annotated[
            JobState | None, QueryParameter(name="state", description="Only jobs in this state")
        ] = None,
        type: Annotated[str | None, QueryParameter(max_length=100)] = None,
        queue: Annotated[str | None, QueryParameter(max_length=64)] = None,
        owner: Annotated[
            str | None, QueryParameter(max_length=200, description="Admins only: one owner's jobs")
        ] = None,
        created_after: Annotated[datetime | None, QueryParameter()] = None,
        created_before: Annotated[datetime | None, QueryParameter()] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[
            str | None, QueryParameter(max_length=400, description="`next` of the previous page")
        ] = None,
    ) -> JobPage:
        """Jobs newest first, filtered; a user sees their own, an admin everyone's.

        A page that stops short of `limit` with a `next` cursor ran out of its scan budget
        (a rarely matching filter): follow `next` to go on.
        """
        principal = request.user
        if owner is not None and not principal.is_admin and owner != principal.sub:
            raise problem(403, "only admins list other users' jobs")
        if queue is not None:
            known_queue(queue, queues, status=400)
        query = JobFilter(
            queues=(queue,) if queue is not None else queues.names,
            owner=owner if principal.is_admin else principal.sub,
            state=job_state,
            type=type,
            since_ms=epoch_ms(created_after),
            until_ms=epoch_ms(created_before),
        )
        try:
            page = await list_jobs(redis, query, limit=limit, cursor=cursor)
        except CursorError as exc:
            raise problem(400, str(exc)) from exc
        return msgspec.structs.replace(
            page, items=tuple(_as_seen_by(job, principal) for job in page.items)
        )

    @get("/{job_id:str}", summary="Read a job")
    async def read(
        self,
        request: Request[Principal, Token, Any],
        job_id: JobId,
        store: NamedDependency[JobStore],
        queues: NamedDependency[QueueSettings],
    ) -> JobView:
        """The job's state, attempts, progress, result and errors (details for admins only)."""
        view = await _visible_job(store, queues, job_id, request.user)
        return _as_seen_by(view, request.user)

    @post(
        "/{job_id:str}/cancel",
        status_code=HTTP_200_OK,
        summary="Cancel a waiting job",
        responses=CONFLICT,
    )
    async def cancel(
        self,
        request: Request[Principal, Token, Any],
        job_id: JobId,
        store: NamedDependency[JobStore],
        queues: NamedDependency[QueueSettings],
    ) -> JobView:
        """Cancel a delayed, queued or retry-waiting job: 409 once it runs or has finished."""
        view = await _visible_job(store, queues, job_id, request.user)
        if view.state not in CANCELLABLE_STATES or not await store.cancel(
            view, request.user.sub, now_ms()
        ):
            raise problem(409, f"job {job_id} can no longer be cancelled: it is {view.state}")
        cancelled = await _visible_job(store, queues, job_id, request.user)
        return _as_seen_by(cancelled, request.user)

    @post(
        "/{job_id:str}/retry",
        status_code=HTTP_202_ACCEPTED,
        summary="Retry a dead job",
        responses=CONFLICT,
    )
    async def retry(
        self,
        request: Request[Principal, Token, Any],
        job_id: JobId,
        store: NamedDependency[JobStore],
        dead_letters: NamedDependency[DeadLetters],
        queues: NamedDependency[QueueSettings],
    ) -> JobView:
        """Run a dead-lettered job again, a fresh round of attempts (its dead letter is replayed);
        409 unless the job is dead."""
        view = await _visible_job(store, queues, job_id, request.user)
        if view.state != "dead":
            raise problem(409, f"job {job_id} is {view.state}: only a dead job can be retried")
        letter = await store.dead_letter_of(view)
        outcome = (
            Replayed.GONE
            if letter is None
            else (await dead_letters.replay(view.queue, letter, request.user.sub, now_ms()))[0]
        )
        if outcome is not Replayed.REPLAYED:
            raise problem(409, f"job {job_id} cannot be retried: its dead letter is gone")
        retried = await _visible_job(store, queues, job_id, request.user)
        return _as_seen_by(retried, request.user)

    @delete(
        "/{job_id:str}", summary="Remove a finished job", guards=[admin_only], responses=CONFLICT
    )
    async def remove(
        self,
        job_id: JobId,
        store: NamedDependency[JobStore],
        queues: NamedDependency[QueueSettings],
    ) -> None:
        """Delete a completed, dead or cancelled job's record and dead letter; admins only."""
        view = await store.get(queues.names, job_id)
        if view is None:
            raise problem(404, f"no job {job_id}")
        if not await store.remove(view):
            raise problem(409, f"job {job_id} is {view.state}: only a finished job can be removed")


@post(
    "/v1/jobs:batch",
    status_code=HTTP_202_ACCEPTED,
    summary="Submit jobs in one batch",
    tags=["jobs"],
)
async def submit_batch(
    *,
    request: Request[Principal, Token, Any],
    data: JSONBody[JobBatch],
    store: NamedDependency[JobStore],
    queues: NamedDependency[QueueSettings],
    enqueued: NamedDependency[EnqueueCollector],
    job_rate: NamedDependency[JobRateLimiter],
    room_policy: NamedDependency[RoomPolicy],
) -> BatchAccepted:
    """Validate every job, then queue them all at once on one queue, or none (422 naming each
    invalid job by its index)."""
    now = now_ms()
    envelopes: list[JobEnvelope] = []
    invalid: list[dict[str, Any]] = []
    for index, submission in enumerate(data.jobs):
        try:
            envelopes.append(_envelope(submission, request.user.sub, queues, now))
        except ValueError as exc:
            invalid.append({"index": index, "detail": str(exc)})
    if invalid:
        raise problem(422, f"{len(invalid)} of {len(data.jobs)} jobs are invalid", errors=invalid)
    if len({envelope.queue for envelope in envelopes}) > 1:
        raise problem(422, "a batch goes to one queue: split it by queue")
    for envelope in envelopes:
        _may_tag(request.user, envelope, room_policy)
    await job_rate.admit(request.user.sub, len(envelopes))
    with _enqueuing(envelopes[0].queue, len(envelopes)):
        trace = current_trace()
        envelopes = [msgspec.structs.replace(envelope, trace=trace) for envelope in envelopes]
        await store.enqueue_batch(envelopes)
    for envelope in envelopes:
        enqueued.enqueued(envelope.queue, envelope.type)
    return BatchAccepted(ids=tuple(envelope.id for envelope in envelopes))


def _enqueuing(queue: str, jobs: int) -> AbstractContextManager[Span]:
    """The span of writing jobs to their queue: the parent of their runs in the worker."""
    return tracer.start_as_current_span(
        f"enqueue {queue}",
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "redis",
            "messaging.destination.name": queue,
            "messaging.batch.message_count": jobs,
        },
    )


def _may_tag(principal: Principal, envelope: JobEnvelope, policy: RoomPolicy) -> None:
    """A job's events go to its entity's room: only who may watch that room may tag a job
    with it, or anyone could put events before an entity's watchers."""
    if envelope.entity is None:
        return
    reason = policy.refusal(principal, f"entity:{envelope.entity}")
    if reason is not None:
        raise problem(403, f"may not tag a job with {envelope.entity}: {reason}")


def _envelope(data: JobSubmission, owner: str, queues: QueueSettings, now: int) -> JobEnvelope:
    """A submission checked against its type's contract and the queues, as a job to queue;
    ValueError saying what is wrong."""
    payload_type = JOB_PAYLOADS.get(data.type)
    if payload_type is None:
        raise ValueError(
            f"unknown job type {data.type!r}; known: {', '.join(sorted(JOB_PAYLOADS))}"
        )
    try:
        msgspec.convert(data.payload, payload_type)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid payload for {data.type}: {exc}") from exc
    queue = data.queue or queues.default
    if queue not in queues.names:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(queues.names)}")
    return JobEnvelope(
        id=str(uuid.uuid4()),
        type=data.type,
        queue=queue,
        priority=data.priority,
        owner=owner,
        max_attempts=data.max_attempts or DEFAULT_MAX_ATTEMPTS,
        enqueued_at_ms=now,
        due_at_ms=data.due_ms(now),
        timeout_s=data.timeout_s,
        callback_url=data.callback_url,
        entity=data.entity,
        payload=msgspec.Raw(msgspec.json.encode(data.payload)),
    )


async def _visible_job(
    store: JobStore, queues: QueueSettings, job_id: str, principal: Principal
) -> JobView:
    """The job, if the caller may see it: its owner or an admin (404 unknown, 403 not theirs)."""
    view = await store.get(queues.names, job_id)
    if view is None:
        raise problem(404, f"no job {job_id}")
    if not principal.is_admin and view.owner != principal.sub:
        raise problem(403, "this job belongs to another user")
    return view


def _as_seen_by(view: JobView, principal: Principal) -> JobView:
    """Admins see each error's detail; owners see the friendly message only."""
    if principal.is_admin:
        return view
    hidden = tuple(msgspec.structs.replace(error, detail="") for error in view.errors)
    return msgspec.structs.replace(view, errors=hidden)
