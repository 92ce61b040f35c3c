"""The queue gauges, exported at scrape time from the poller's latest snapshot."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from shared.queuestats import LaneStats, QueueSnapshot, QueueStats

LANE_LABELS = ("queue", "priority")
QUEUE_LABELS = ("queue",)

# Name, help and the figure of a lane, for every per-lane gauge.
LANE_GAUGES: tuple[tuple[str, str, Callable[[LaneStats], float]], ...] = (
    (
        "conduit_queue_depth",
        "Entries in a lane's stream: waiting and in hand.",
        lambda lane: lane.depth,
    ),
    (
        "conduit_queue_lag",
        "Entries of a lane's stream that no worker has read yet.",
        lambda lane: lane.lag,
    ),
    (
        "conduit_queue_pending",
        "Entries of a lane's stream delivered to a worker and not yet acknowledged.",
        lambda lane: lane.pending,
    ),
    (
        "conduit_queue_oldest_pending_age_seconds",
        "Age of the oldest pending entry of a lane, from its stream id; 0 when none is pending.",
        lambda lane: lane.oldest_pending_age_s,
    ),
)
QUEUE_GAUGES: tuple[tuple[str, str, Callable[[QueueStats], float]], ...] = (
    (
        "conduit_queue_delayed",
        "Jobs of a queue waiting for their due time or their next attempt.",
        lambda queue: queue.delayed,
    ),
    (
        "conduit_queue_dead_letters",
        "Entries of a queue's dead-letter stream.",
        lambda queue: queue.dead_letters,
    ),
)


def snapshot_families(snapshot: QueueSnapshot | None) -> list[Metric]:
    """The gauges of a snapshot; without one, the families exist but hold no samples."""
    families: list[Metric] = []
    for name, documentation, lane_value in LANE_GAUGES:
        lane_family = GaugeMetricFamily(name, documentation, labels=LANE_LABELS)
        for lane in snapshot.lanes if snapshot else ():
            lane_family.add_metric([lane.queue, lane.priority], lane_value(lane))
        families.append(lane_family)
    for name, documentation, queue_value in QUEUE_GAUGES:
        queue_family = GaugeMetricFamily(name, documentation, labels=QUEUE_LABELS)
        for queue in snapshot.queues if snapshot else ():
            queue_family.add_metric([queue.queue], queue_value(queue))
        families.append(queue_family)
    return families


class QueueCollector(Collector):
    """Holds the poller's latest snapshot, and counts the reads that failed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._snapshot: QueueSnapshot | None = None
        self._updated_at: float | None = None
        self._failures = 0

    def update(self, snapshot: QueueSnapshot) -> None:
        """Export `snapshot` from now on."""
        self._snapshot = snapshot
        self._updated_at = self._clock()

    def failed(self) -> None:
        """A read failed; the last snapshot stays exported."""
        self._failures += 1

    def collect(self) -> Iterator[Metric]:
        """Yield the gauges, when they were last read, and how many reads failed."""
        yield from snapshot_families(self._snapshot)
        # Lets an alert tell gauges that are still true from gauges left over from an outage.
        updated = GaugeMetricFamily(
            "conduit_queue_stats_updated_timestamp_seconds",
            "When the queue gauges were last read from Redis (Unix time).",
        )
        if self._updated_at is not None:
            updated.add_metric([], self._updated_at)
        yield updated
        yield CounterMetricFamily(
            "conduit_queue_stats_read_failures",
            "Reads of the queue gauges from Redis that failed.",
            value=self._failures,
        )
