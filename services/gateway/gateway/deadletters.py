"""`/v1/queues/{name}/dead-letters`: inspect, replay and purge a queue's dead letters; admins only.

Every replay and purge is recorded in the queue's audit trail, with who and when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_200_OK

from gateway.auth import Principal, admin_only
from gateway.openapi import CONFLICT
from gateway.params import QueueName, epoch_ms, known_queue
from gateway.problems import problem
from shared.clock import now_ms
from shared.deadletters import (
    AuditEntry,
    BulkOutcome,
    DeadLetterFilter,
    DeadLetterPage,
    DeadLetters,
    DeadLetterView,
    Replayed,
    is_entry_id,
)
from shared.settings import QueueSettings

LetterId = Annotated[str, PathParameter(max_length=41, description="The dead letter's entry id")]


class ReplayAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """A replayed dead letter: its job runs again under the same id."""

    letter: str
    job_id: str


class DeadLetterController(Controller):
    """A queue's dead letters, newest first."""

    path = "/v1/queues/{name:str}/dead-letters"
    tags = ("dead letters",)
    guards = (admin_only,)

    @get(summary="List dead letters")
    async def list_all(
        self,
        *,
        name: QueueName,
        queues: NamedDependency[QueueSettings],
        dead_letters: NamedDependency[DeadLetters],
        type: Annotated[str | None, QueryParameter(max_length=100)] = None,
        reason: Annotated[
            str | None, QueryParameter(max_length=200, description="Part of the reason")
        ] = None,
        owner: Annotated[str | None, QueryParameter(max_length=200)] = None,
        after: Annotated[datetime | None, QueryParameter(description="Dead since")] = None,
        before: Annotated[datetime | None, QueryParameter(description="Dead before")] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, QueryParameter(max_length=41)] = None,
    ) -> DeadLetterPage:
        """Filtered, newest first. A page short of `limit` with a `next` cursor ran out of its
        scan budget: follow `next` to go on."""
        known_queue(name, queues)
        if cursor is not None and not is_entry_id(cursor):
            raise problem(400, f"not a cursor from this API: {cursor!r}")
        query = DeadLetterFilter(
            type=type,
            reason=reason,
            owner=owner,
            since_ms=epoch_ms(after),
            until_ms=epoch_ms(before),
        )
        return await dead_letters.page(name, query, limit=limit, cursor=cursor)

    @get("/audit", summary="Read the audit trail")
    async def audit(
        self,
        *,
        name: QueueName,
        queues: NamedDependency[QueueSettings],
        dead_letters: NamedDependency[DeadLetters],
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> tuple[AuditEntry, ...]:
        """Who replayed or purged which dead letters, and when; newest first."""
        known_queue(name, queues)
        return await dead_letters.audit(name, limit=limit)

    @get("/{letter:str}", summary="Read a dead letter")
    async def read(
        self,
        name: QueueName,
        letter: LetterId,
        queues: NamedDependency[QueueSettings],
        dead_letters: NamedDependency[DeadLetters],
    ) -> DeadLetterView:
        """The dead letter: its job's payload, every attempt's error and the reason."""
        known_queue(name, queues)
        view = await dead_letters.get(name, letter) if is_entry_id(letter) else None
        if view is None:
            raise problem(404, f"no dead letter {letter} on queue {name}")
        return view

    @post(
        "/{letter:str}/replay",
        status_code=HTTP_200_OK,
        summary="Replay a dead letter",
        responses=CONFLICT,
    )
    async def replay(
        self,
        request: Request[Principal, Token, Any],
        name: QueueName,
        letter: LetterId,
        queues: NamedDependency[QueueSettings],
        dead_letters: NamedDependency[DeadLetters],
    ) -> ReplayAnswer:
        """Queue the job again with a fresh round of attempts, keeping its errors; 404 when the
        dead letter is gone, 409 when it holds no job or its job runs again already."""
        known_queue(name, queues)
        if not is_entry_id(letter):
            raise problem(404, f"no dead letter {letter} on queue {name}")
        outcome, job_id = await dead_letters.replay(name, letter, request.user.sub, now_ms())
        if outcome is Replayed.GONE:
            raise problem(404, f"no dead letter {letter} on queue {name}")
        if outcome is Replayed.NOT_A_JOB or job_id is None:
            raise problem(409, f"dead letter {letter} holds no readable job: purge it instead")
        if outcome is Replayed.LIVE:
            raise problem(409, f"the job of dead letter {letter} runs again already")
        return ReplayAnswer(letter=letter, job_id=job_id)

    @post("/replay", status_code=HTTP_200_OK, summary="Replay dead letters in bulk")
    async def replay_matching(
        self,
        request: Request[Principal, Token, Any],
        name: QueueName,
        data: JSONBody[DeadLetterFilter],
        queues: NamedDependency[QueueSettings],
        dead_letters: NamedDependency[DeadLetters],
    ) -> BulkOutcome:
        """Replay up to 1,000 dead letters matching the filter, oldest first (`more` says
        whether others remain); `{}` matches every one."""
        known_queue(name, queues)
        return await dead_letters.replay_matching(name, data, request.user.sub, now_ms())

    @post("/purge", status_code=HTTP_200_OK, summary="Purge dead letters")
    async def purge(
        self,
        request: Request[Principal, Token, Any],
        name: QueueName,
        data: JSONBody[DeadLetterFilter],
        queues: NamedDependency[QueueSettings],
        dead_letters: NamedDependency[DeadLetters],
    ) -> BulkOutcome:
        """Delete every dead letter matching the filter (`{}`: all of them), for good."""
        known_queue(name, queues)
        return await dead_letters.purge(name, data, request.user.sub, now_ms())
