"""The gateway's own metrics: jobs accepted, by queue and type, exported at scrape time; and
HTTP request metrics through Litestar's Prometheus middleware, every request counted."""

from __future__ import annotations

import contextvars
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from litestar.exceptions import HTTPException
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

_request_span: contextvars.ContextVar[dict[str, float]] = contextvars.ContextVar("request_span")


class _RequestMetricsMiddleware(PrometheusMiddleware):
    """Litestar's request metrics, also right about requests that middleware inside refuses.

    Authentication fails by raising, and Litestar's outermost handler answers: the response
    never passes this middleware, which would count a 401 as a 200. The status the exception
    will be answered with is noted before it goes on.
    """

    def __init__(self, app: ASGIApp, config: PrometheusConfig) -> None:
        super().__init__(app=self._noting_errors(app), config=config)

    @staticmethod
    def _noting_errors(app: ASGIApp) -> ASGIApp:
        async def noted(scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await app(scope, receive, send)
            except Exception as exc:
                span = _request_span.get(None)
                if span is not None:
                    span["status_code"] = exc.status_code if isinstance(exc, HTTPException) else 500
                raise

        return noted

    def _get_wrapped_send(self, send: Send, request_span: dict[str, float]) -> Callable[..., Any]:
        _request_span.set(request_span)
        return super()._get_wrapped_send(send, request_span)


def request_metrics() -> PrometheusConfig:
    """Request counts and durations, labelled by route template: one series per route."""
    return PrometheusConfig(
        app_name="gateway",
        prefix="conduit_gateway",
        group_path=True,
        middleware_class=_RequestMetricsMiddleware,
    )


class EnqueueCollector(Collector):
    """Counts accepted jobs as plain integers; registered while the app runs."""

    def __init__(self) -> None:
        self._enqueued: Counter[tuple[str, str]] = Counter()

    def enqueued(self, queue: str, job_type: str) -> None:
        """One job was accepted (202) onto `queue`."""
        self._enqueued[queue, job_type] += 1

    def collect(self) -> Iterator[Metric]:
        """Yield the current counts."""
        family = CounterMetricFamily(
            "conduit_jobs_enqueued", "Jobs accepted by the gateway.", labels=("queue", "type")
        )
        for (queue, job_type), count in sorted(self._enqueued.items()):
            family.add_metric([queue, job_type], count)
        yield family
