"""The OpenAPI document tells the truth about errors: every operation lists the problem+json
answers the gateway's shared machinery (auth, validation, body limit, rate limit, the handler of
the unexpected) can give it, in the shape they have.

Without this, Litestar documents a 400 as `application/json` with a shape the gateway never
sends, and no other error at all. A handler adds its own (a 409, say) through `responses=`,
with `problem_response`; what it declares wins over what is derived here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from http import HTTPStatus

import msgspec
from litestar.constants import RESERVED_KWARGS
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.plugins import ReceiveRoutePlugin
from litestar.routes import BaseRoute, HTTPRoute

from gateway.auth import PUBLIC_PATHS

PROBLEM_MEDIA_TYPE = "application/problem+json"
# The dependency through which a handler counts new jobs (see gateway.ratelimit).
JOB_RATE_DEPENDENCY = "job_rate"
_PUBLIC = tuple(re.compile(pattern) for pattern in PUBLIC_PATHS)


class Problem(msgspec.Struct, frozen=True, kw_only=True):
    """RFC 9457 problem details; members of the problem's own may follow (e.g. `errors`)."""

    type: str
    title: str
    status: int
    detail: str


def problem_response(status: int) -> ResponseSpec:
    """The documentation of a problem+json answer with this status."""
    return ResponseSpec(
        data_container=Problem,
        description=HTTPStatus(status).phrase,
        media_type=PROBLEM_MEDIA_TYPE,
        generate_examples=False,
    )


# For a route that refuses what the resource's state does not allow (cancel a running job, ...).
CONFLICT = {409: problem_response(409)}


def shared_problem_statuses(
    handler: HTTPRouteHandler, path: str, has_path_params: bool
) -> set[int]:
    """What the machinery every handler shares may answer: 401 and 403 off the public paths,
    400 for parameters or a body that do not validate, 404 for what a path names and does
    not exist, 413 and 422 for a body too large or refused, 429 where jobs are counted, and
    500 anywhere."""
    parameters = handler.parsed_fn_signature.parameters
    dependencies = handler.resolve_dependencies()
    has_body = "data" in parameters
    has_request_params = has_path_params or any(
        name not in RESERVED_KWARGS and name not in dependencies for name in parameters
    )
    statuses = {500}
    if not any(public.match(path) for public in _PUBLIC):
        statuses |= {401, 403}
    if has_request_params or has_body:
        statuses.add(400)
    if has_path_params:
        statuses.add(404)
    if has_body:
        statuses |= {413, 422}
    if JOB_RATE_DEPENDENCY in parameters:
        statuses.add(429)
    return statuses


class ProblemDocs(ReceiveRoutePlugin):
    """Adds the shared problem answers to each operation's documented responses."""

    def receive_route(self, route: BaseRoute) -> None:
        """Document the route's handlers before the OpenAPI document is first built."""
        if not isinstance(route, HTTPRoute):
            return
        for handler in route.route_handlers:
            derived = shared_problem_statuses(handler, route.path, bool(route.path_parameters))
            declared: Mapping[int, ResponseSpec] = handler.responses or {}
            handler.responses = {
                **{status: problem_response(status) for status in sorted(derived)},
                **declared,
            }
