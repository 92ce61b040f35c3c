"""What the health service probes, how long it waits for each answer, and its warn limits
(`HEALTH_*`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec


class HealthSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Base URLs of the services whose `/livez` is probed, timeouts, the queue gauges' poll and
    the limits of the warn checks.

    `optional_checks` names checks (e.g. `notifier`) whose failure degrades the answer to
    `warn` (still 200) instead of `fail` (503); every other check is critical, except the warn
    checks, which never fail. `queue_poll_s` is how often the queue gauges (`/metrics`) are read
    from Redis; the queue warn checks judge the latest read. Workers are found by their
    heartbeats in Redis, so no worker URL is needed.
    """

    env_prefix: ClassVar[str] = "HEALTH_"

    gateway_url: str = "http://127.0.0.1:8000"
    notifier_url: str = "http://127.0.0.1:8001"
    probe_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    optional_checks: tuple[str, ...] = ()
    queue_poll_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
    # Jobs of a queue no worker has read yet, over all its priorities.
    warn_lag_jobs: Annotated[int, msgspec.Meta(ge=0)] = 1000
    # Age of a queue's oldest job read by a worker and not finished (from its enqueue).
    warn_pending_age_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    # How long one new dead letter keeps its queue's check warning.
    warn_dead_letters_window_s: Annotated[float, msgspec.Meta(gt=0)] = 300.0
    # Share of Redis's maxmemory in use (when one is set).
    warn_redis_memory_ratio: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.9
