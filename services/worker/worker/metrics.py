"""The worker's job metrics, named by Prometheus conventions, in the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.contracts.jobs import JobEnvelope

# From 1 ms to 5 min: the demo jobs and typical API calls sit at the low end.
DURATION_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class JobMetrics:
    """Counts and times every attempt by queue and job type."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("queue", "type")
        self._started = Counter(
            "conduit_jobs_started_total", "Attempts started.", labels, registry=registry
        )
        self._completed = Counter(
            "conduit_jobs_completed_total", "Jobs completed.", labels, registry=registry
        )
        self._failed = Counter(
            "conduit_jobs_failed_total", "Attempts that failed.", labels, registry=registry
        )
        self._retried = Counter(
            "conduit_jobs_retried_total",
            "Failed attempts parked for a retry.",
            labels,
            registry=registry,
        )
        self._dead = Counter(
            "conduit_jobs_dead_lettered_total",
            "Jobs moved to the dead letters.",
            labels,
            registry=registry,
        )
        self._duration = Histogram(
            "conduit_job_duration_seconds",
            "How long an attempt's handler ran.",
            labels,
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        self._wait = Histogram(
            "conduit_job_wait_seconds",
            "From a job's due time to its first attempt's start.",
            labels,
            buckets=DURATION_BUCKETS_S,
            registry=registry,
        )
        self._running = Gauge(
            "conduit_jobs_running", "Attempts running now.", ("queue",), registry=registry
        )

    def started(self, envelope: JobEnvelope, now_ms: int) -> None:
        """An attempt started; the first one also records how long the job waited."""
        self._started.labels(envelope.queue, envelope.type).inc()
        self._running.labels(envelope.queue).inc()
        if envelope.attempt == 1:
            due_ms = max(envelope.enqueued_at_ms, envelope.due_at_ms)
            self._wait.labels(envelope.queue, envelope.type).observe(max(now_ms - due_ms, 0) / 1000)

    def finished(self, envelope: JobEnvelope, duration_s: float, *, ok: bool) -> None:
        """An attempt's handler returned (`ok`) or raised."""
        self._running.labels(envelope.queue).dec()
        self._duration.labels(envelope.queue, envelope.type).observe(duration_s)
        if ok:
            self._completed.labels(envelope.queue, envelope.type).inc()
        else:
            self._failed.labels(envelope.queue, envelope.type).inc()

    def retried(self, envelope: JobEnvelope) -> None:
        """A failed attempt's job waits for its next attempt."""
        self._retried.labels(envelope.queue, envelope.type).inc()

    def dead_lettered(self, envelope: JobEnvelope) -> None:
        """A job went to the dead letters."""
        self._dead.labels(envelope.queue, envelope.type).inc()
