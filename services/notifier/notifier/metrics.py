"""The notifier's own Prometheus metrics, read from the hub and the source at scrape time."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from notifier.hub import Hub
from notifier.source import EventSourceStats


class NotifierCollector(Collector):
    """Connections and messages, counted by the hub as plain integers and exported on scrape."""

    def __init__(self, hub: Hub, source: EventSourceStats) -> None:
        self._hub = hub
        self._source = source

    def collect(self) -> Iterator[Metric]:
        """Yield the current values."""
        yield GaugeMetricFamily(
            "conduit_notifier_connections",
            "Open WebSocket connections.",
            value=self._hub.connection_count,
        )
        yield CounterMetricFamily(
            "conduit_notifier_messages_sent",
            "Event frames written to WebSocket connections.",
            value=self._hub.messages_sent,
        )
        yield CounterMetricFamily(
            "conduit_notifier_connections_dropped",
            "Connections dropped because a push failed: too slow or already gone.",
            value=self._hub.connections_dropped,
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
