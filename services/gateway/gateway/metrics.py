"""The gateway's own metrics: jobs accepted, by queue and type, exported at scrape time."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


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
