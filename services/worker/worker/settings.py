"""The worker's own settings (`WORKER_*`)."""

from __future__ import annotations

import os
import socket
from typing import ClassVar

import msgspec

from shared.settings import SettingsError


class WorkerSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How one worker process consumes: its name, concurrency, retry schedule and grace period."""

    env_prefix: ClassVar[str] = "WORKER_"

    id: str = ""
    concurrency: int = 32
    grace_s: float = 25.0
    retry_schedule_s: tuple[float, ...] = (10.0, 60.0, 300.0)
    promote_interval_s: float = 0.25

    def __post_init__(self) -> None:
        if not 1 <= self.concurrency <= 1000:
            raise SettingsError("WORKER_CONCURRENCY must be between 1 and 1000")
        if any(delay < 0 for delay in self.retry_schedule_s):
            raise SettingsError("WORKER_RETRY_SCHEDULE_S must hold delays >= 0")

    @property
    def consumer(self) -> str:
        """This process's consumer name in the group: unique per host and process."""
        return self.id or f"{socket.gethostname()}-{os.getpid()}"
