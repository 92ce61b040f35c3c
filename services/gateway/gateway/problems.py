"""RFC 9457 problem details for every error the gateway answers, each with a stable type URI."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import (
    ProblemDetailsConfig,
    ProblemDetailsException,
    ProblemDetailsPlugin,
)
from litestar.types import ExceptionHandler
from redis.exceptions import RedisClusterException, RedisError

log = logging.getLogger(__name__)

TYPE_PREFIX = "urn:conduit:problem:"

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "invalid-job",
    429: "rate-limited",
    503: "unavailable",
}


def problem(
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Exception:
    """An exception the plugin renders as problem+json, with `headers` on the response."""
    return ProblemDetailsException(
        status_code=status,
        type_=TYPE_PREFIX + (slug or _SLUGS.get(status, "error")),
        title=HTTPStatus(status).phrase,
        detail=detail,
        headers=headers,
        extra=extra or None,
    )


_INTERNAL = ProblemDetailsException(
    status_code=500,
    type_=TYPE_PREFIX + "internal",
    title=HTTPStatus.INTERNAL_SERVER_ERROR.phrase,
    detail="The gateway failed to answer; the error is logged.",
)


def _from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    if exc.status_code >= 500:
        # A framework error meant for us, not the client: logged, and answered without detail.
        log.error("server error answered as problem+json: %s", exc.detail, exc_info=exc)
        return _INTERNAL
    slug = "validation" if isinstance(exc, ValidationException) else None
    extra: dict[str, Any] | None = None
    if isinstance(exc.extra, list):
        extra = {"errors": exc.extra}
    elif isinstance(exc.extra, dict):
        extra = exc.extra
    return ProblemDetailsException(
        status_code=exc.status_code,
        type_=TYPE_PREFIX + (slug or _SLUGS.get(exc.status_code, "error")),
        title=HTTPStatus(exc.status_code).phrase,
        detail=exc.detail,
        headers=exc.headers,
        extra=extra,
    )


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return _INTERNAL.to_response(request)


def problem_details_plugin() -> ProblemDetailsPlugin:
    """Render HTTP exceptions, and anything unexpected, as problem+json."""
    return ProblemDetailsPlugin(
        ProblemDetailsConfig(
            exception_to_problem_detail_map={HTTPException: _from_http_exception},
        )
    )


def _redis_unavailable(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("Redis failed answering %s %s: %r", request.method, request.url.path, exc)
    unavailable = ProblemDetailsException(
        status_code=503,
        type_=TYPE_PREFIX + _SLUGS[503],
        title=HTTPStatus.SERVICE_UNAVAILABLE.phrase,
        detail="Redis did not answer in time. Retry; an Idempotency-Key makes a retried POST safe.",
        headers={"Retry-After": "1"},
    )
    return unavailable.to_response(request)


EXCEPTION_HANDLERS: dict[int | type[Exception], ExceptionHandler[Any]] = {
    RedisError: _redis_unavailable,
    # A cluster client's "no node answers", which is no RedisError.
    RedisClusterException: _redis_unavailable,
    Exception: _unexpected,
}
