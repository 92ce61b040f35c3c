"""`/v1/jobs`: submit a job, read its state."""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, JSONBody, PathParameter
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_202_ACCEPTED

from gateway.auth import Principal
from gateway.problems import problem
from shared.contracts.commands import JOB_PAYLOADS
from shared.contracts.jobs import (
    DEFAULT_MAX_ATTEMPTS,
    JobAccepted,
    JobEnvelope,
    JobSubmission,
    JobView,
)
from shared.jobstore import JobStore
from shared.settings import QueueSettings

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
        request: Request[Principal, Token, Any],
        data: JSONBody[JobSubmission],
        store: NamedDependency[JobStore],
        queues: NamedDependency[QueueSettings],
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
        envelope = JobEnvelope(
            id=str(uuid.uuid4()),
            type=data.type,
            queue=queue,
            owner=request.user.sub,
            max_attempts=data.max_attempts or DEFAULT_MAX_ATTEMPTS,
            enqueued_at_ms=time.time_ns() // 1_000_000,
            payload=msgspec.Raw(msgspec.json.encode(data.payload)),
        )
        job_id, created = await store.enqueue(envelope, idempotency_key=idempotency_key)
        headers = {"Location": f"/v1/jobs/{job_id}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return Response(JobAccepted(id=job_id), status_code=HTTP_202_ACCEPTED, headers=headers)

    @get("/{job_id:str}", summary="Read a job")
    async def read(
        self,
        request: Request[Principal, Token, Any],
        job_id: Annotated[str, PathParameter(max_length=100)],
        store: NamedDependency[JobStore],
        queues: NamedDependency[QueueSettings],
    ) -> JobView:
        """The job's state, attempts, progress, result and errors (details for admins only)."""
        view = await store.get(queues.names, job_id)
        if view is None:
            raise problem(404, f"no job {job_id}")
        principal = request.user
        if not principal.is_admin and view.owner != principal.sub:
            raise problem(403, "this job belongs to another user")
        if principal.is_admin:
            return view
        hidden = tuple(msgspec.structs.replace(error, detail="") for error in view.errors)
        return msgspec.structs.replace(view, errors=hidden)
