"""`/v1/repeatables`: list, read, create and delete repeatable jobs; admins only."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from gateway.auth import Principal, admin_only
from gateway.params import QueueName
from gateway.problems import problem
from shared.clock import now_ms
from shared.contracts.jobs import DEFAULT_MAX_ATTEMPTS
from shared.contracts.repeatables import Repeatable, RepeatableSubmission
from shared.repeatables import InvalidRepeatableError, RepeatableStore, check_repeatable
from shared.settings import QueueSettings

Name = Annotated[str, PathParameter(max_length=64)]


def _location(definition: Repeatable) -> str:
    return f"/v1/repeatables/{definition.queue}/{definition.name}"


class RepeatableController(Controller):
    """Jobs enqueued on a cron schedule or a fixed interval, one run per tick across workers."""

    path = "/v1/repeatables"
    tags = ("repeatables",)
    guards = (admin_only,)

    @get(summary="List repeatable jobs")
    async def list_all(
        self,
        repeatables: NamedDependency[RepeatableStore],
        queues: NamedDependency[QueueSettings],
    ) -> list[Repeatable]:
        """Every definition on every configured queue, those written in code included."""
        return await repeatables.definitions(queues.names)

    @get("/{queue:str}/{name:str}", summary="Read a repeatable job")
    async def read(
        self,
        queue: QueueName,
        name: Name,
        repeatables: NamedDependency[RepeatableStore],
        queues: NamedDependency[QueueSettings],
    ) -> Repeatable:
        """One definition."""
        definition = await repeatables.get(queue, name) if queue in queues.names else None
        if definition is None:
            raise problem(404, f"no repeatable job {name!r} on queue {queue!r}")
        return definition

    @post(status_code=HTTP_201_CREATED, summary="Create a repeatable job")
    async def create(
        self,
        request: Request[Principal, Token, Any],
        data: JSONBody[RepeatableSubmission],
        repeatables: NamedDependency[RepeatableStore],
        queues: NamedDependency[QueueSettings],
    ) -> Response[Repeatable]:
        """Validate the schedule and the job against its type's contract, then store it; 201."""
        definition = Repeatable(
            name=data.name,
            type=data.type,
            payload=data.payload,
            queue=data.queue or queues.default,
            owner=request.user.sub,
            cron=data.cron,
            every_s=data.every_s,
            max_attempts=data.max_attempts or DEFAULT_MAX_ATTEMPTS,
        )
        try:
            check_repeatable(definition, queues.names)
        except InvalidRepeatableError as exc:
            raise problem(422, str(exc), slug="invalid-repeatable") from exc
        if not await repeatables.create(definition, now_ms()):
            raise problem(
                409, f"a repeatable job {definition.name!r} exists on queue {definition.queue!r}"
            )
        return Response(
            definition,
            status_code=HTTP_201_CREATED,
            headers={"Location": _location(definition)},
        )

    @delete("/{queue:str}/{name:str}", status_code=HTTP_204_NO_CONTENT, summary="Delete one")
    async def remove(
        self,
        queue: QueueName,
        name: Name,
        repeatables: NamedDependency[RepeatableStore],
        queues: NamedDependency[QueueSettings],
    ) -> None:
        """Stop scheduling it; a definition from code comes back when a worker restarts."""
        if queue not in queues.names or not await repeatables.delete(queue, name):
            raise problem(404, f"no repeatable job {name!r} on queue {queue!r}")
