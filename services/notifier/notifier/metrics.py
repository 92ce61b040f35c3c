"""The notifier's own Prometheus metrics, read from the hub, source and writer at scrape time.

They live in a registry of the app's own, not the process-wide one, so that several notifier
apps can run in one process (as the tests run them); `/metrics` serves both registries.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from litestar import Response, get
from litestar.handlers import HTTPRouteHandler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from notifier.admission import HandshakeBucket
from notifier.hub import Hub
from notifier.persist import WriterStats
from notifier.source import PUSH_LATENCY_BUCKETS_S, EventSourceStats


class NotifierCollector(Collector):
    """Connections and messages, counted by the hub as plain integers and exported on scrape."""

    def __init__(
        self,
        hub: Hub,
        handshakes: HandshakeBucket,
        source: EventSourceStats,
        writer: WriterStats | None,
    ) -> None:
        self._hub = hub
        self._handshakes = handshakes
        self._source = source
        self._writer = writer

    def collect(self) -> Iterator[Metric]:
        """Yield the current values."""
        yield GaugeMetricFamily(
            "conduit_notifier_connections",
            "Open WebSocket connections.",
            value=self._hub.connection_count,
        )
        yield CounterMetricFamily(
            "conduit_notifier_messages_sent",
            "Event frames handed to WebSocket connections: written, or buffered for a slow one.",
            value=self._hub.messages_sent,
        )
        yield CounterMetricFamily(
            "conduit_notifier_connections_dropped",
            "Connections dropped because a push failed: too slow or already gone.",
            value=self._hub.connections_dropped,
        )
        yield CounterMetricFamily(
            "conduit_notifier_handshakes_refused",
            "WebSocket handshakes closed with 1013 because they came over the admission rate.",
            value=self._handshakes.refused,
        )
        yield CounterMetricFamily(
            "conduit_notifier_events_read",
            "Entries read from the events streams.",
            value=self._source.entries_read,
        )
        yield CounterMetricFamily(
            "conduit_notifier_events_skipped",
            "Events-stream entries skipped because they did not decode.",
            value=self._source.entries_skipped,
        )
        yield _push_latency(self._source)
        if self._writer is not None:
            yield CounterMetricFamily(
                "conduit_notifier_notifications_stored",
                "Notification rows this instance inserted (not counting ones already stored).",
                value=self._writer.stored,
            )
            yield GaugeMetricFamily(
                "conduit_notifier_notifications_in_hand",
                "Events read for storing and not yet stored.",
                value=self._writer.in_hand,
            )
            yield GaugeMetricFamily(
                "conduit_notifier_notifications_failing",
                "1 while storing notifications fails (PostgreSQL unreachable), else 0.",
                value=int(self._writer.failing is not None),
            )


def _push_latency(source: EventSourceStats) -> Metric:
    cumulative = list(itertools.accumulate(source.push_latency_buckets))
    bounds = [*(str(bound) for bound in PUSH_LATENCY_BUCKETS_S), "+Inf"]
    return HistogramMetricFamily(
        "conduit_notifier_push_latency_seconds",
        "From an event's writing to its push to every connection of its rooms.",
        buckets=list(zip(bounds, cumulative, strict=True)),
        sum_value=source.push_latency_sum_s,
    )


def metrics_route(collector: NotifierCollector) -> HTTPRouteHandler:
    """`/metrics`: the process's metrics (HTTP, runtime) and this app's own, as Prometheus text."""
    own = CollectorRegistry(auto_describe=True)
    own.register(collector)

    @get("/metrics", sync_to_thread=False)
    def metrics() -> Response[bytes]:
        """Every metric, in the Prometheus text format."""
        body = generate_latest(REGISTRY) + generate_latest(own)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return metrics
