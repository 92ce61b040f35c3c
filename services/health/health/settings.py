"""What the health service probes and how long it waits for each answer (`HEALTH_*`)."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec


class HealthSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Base URLs of the services whose `/livez` is probed, timeouts and the queue gauges' poll.

    `optional_checks` names checks (e.g. `notifier`) whose failure degrades the answer to
    `warn` (still 200) instead of `fail` (503); every other check is critical. `queue_poll_s`
    is how often the queue gauges (`/metrics`) are read from Redis.
    """

    env_prefix: ClassVar[str] = "HEALTH_"

    gateway_url: str = "http://127.0.0.1:8000"
    notifier_url: str = "http://127.0.0.1:8001"
    worker_url: str = "http://127.0.0.1:8003"
    probe_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 2.0
    optional_checks: tuple[str, ...] = ()
    queue_poll_s: Annotated[float, msgspec.Meta(gt=0, le=3600)] = 5.0
