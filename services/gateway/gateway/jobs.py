"""`/v1/jobs`: submit a job, read its state."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_200_OK, HTTP_202_ACCEPTED

from gateway.auth import Principal
from gateway.metrics import EnqueueCollector
from gateway.problems import problem
from shared.clock import now_ms
from shared.contracts.commands import JOB_PAYLOADS
from shared.contracts.jobs import (
    CANCELLABLE_STATES,
    DEFAULT_MAX_ATTEMPTS,
    JobAccepted,
    JobEnvelope,
    JobSubmission,
    JobView,
)
from shared.jobstore import JobStore
from shared.settings import QueueSettings

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
        idempotency_key: IdempotencyKey = None,
    ) -> Response[JobAccepted]:
        """Validate the job against its type's contract and queue it; 202 with its id."""
        payload_type = JOB_PAYLOADS.get(data.type)
        if payload_type is None:
            raise problem(422, f"unknown job type {data.type!r}", known_types=sorted(JOB_PAYLOADS))
        try:
            msgspec.convert(data.payload, payload_type)
        except msgspec.ValidationError as exc:
            raise problem(422, f"invalid payload for {data.type}: {exc}") from exc
        queue = data.queue or queues.default
        if queue not in queues.names:
            raise problem(422, f"unknown queue {queue!r}", known_queues=list(queues.names))
        now = now_ms()
        envelope = JobEnvelope(
            id=str(uuid.uuid4()),
            type=data.type,
            queue=queue,
            priority=data.priority,
            owner=request.user.sub,
            max_attempts=data.max_attempts or DEFAULT_MAX_ATTEMPTS,
            enqueued_at_ms=now,
            due_at_ms=data.due_ms(now),
            timeout_s=data.timeout_s,
            callback_url=data.callback_url,
            payload=msgspec.Raw(msgspec.json.encode(data.payload)),
        )
        job_id, created = await store.enqueue(envelope, idempotency_key=idempotency_key)
        headers = {"Location": f"/v1/jobs/{job_id}"}
        if created:
            enqueued.enqueued(queue, data.type)
        else:
            headers["Idempotent-Replayed"] = "true"
        return Response(JobAccepted(id=job_id), status_code=HTTP_202_ACCEPTED, headers=headers)

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

    @post("/{job_id:str}/cancel", status_code=HTTP_200_OK, summary="Cancel a waiting job")
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
