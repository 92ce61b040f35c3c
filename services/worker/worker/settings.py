"""The worker's own settings (`WORKER_*`)."""

from __future__ import annotations

import os
import socket
from typing import ClassVar

import msgspec

from shared.ratelimit import parse_rate_limits
from shared.settings import SettingsError
from worker.admission import parse_queue_weights


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How one worker process consumes: its name, concurrency, retry schedule and grace period."""

    env_prefix: ClassVar[str] = "WORKER_"

    id: str = ""
    concurrency: int = 32
    grace_s: float = 25.0
    retry_schedule_s: tuple[float, ...] = (10.0, 60.0, 300.0)
    promote_interval_s: float = 0.25
    # A job whose worker stops renewing its lease for this long is run again by another worker.
    visibility_timeout_s: float = 30.0
    reclaim_interval_s: float = 5.0
    # A job delivered more often than this (its worker died each time) is dead-lettered.
    max_deliveries: int = 5
    # Starts allowed across all workers, per job type or "*" for a whole queue:
    # "demo.echo=10/s,*=100/s" (see worker.ratelimit).
    rate_limits: str = ""
    # Shares of this worker's slots between its queues when all are busy: "default=3,reports=1".
    queue_weights: str = ""
    # Signs the outcomes POSTed to jobs' callback URLs; callbacks are off while it is empty.
    callback_secret: str = ""
    callback_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 1000:
            raise SettingsError("WORKER_CONCURRENCY must be between 1 and 1000")
        if self.visibility_timeout_s < 1 or self.reclaim_interval_s <= 0:
            raise SettingsError(
                "WORKER_VISIBILITY_TIMEOUT_S must be >= 1 and WORKER_RECLAIM_INTERVAL_S > 0"
            )
        try:
            parse_rate_limits(self.rate_limits)
        except ValueError as exc:
            raise SettingsError(f"WORKER_RATE_LIMITS: {exc}") from exc
        try:
            parse_queue_weights(self.queue_weights)
        except ValueError as exc:
            raise SettingsError(f"WORKER_QUEUE_WEIGHTS: {exc}") from exc
        if self.callback_secret and len(self.callback_secret) < 32:
            raise SettingsError("WORKER_CALLBACK_SECRET must be at least 32 characters")
        if self.max_deliveries < 1:
            raise SettingsError("WORKER_MAX_DELIVERIES must be at least 1")
        if any(delay < 0 for delay in self.retry_schedule_s):
            raise SettingsError("WORKER_RETRY_SCHEDULE_S must hold delays >= 0")

    @property
    def consumer(self) -> str:
        """This process's consumer name in the group: unique per host and process."""
        return self.id or f"{socket.gethostname()}-{os.getpid()}"
