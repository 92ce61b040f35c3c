"""The notifier's own settings (`NOTIFIER_*`); Redis, JWT, HTTP and queues come from shared."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.settings import SettingsError


class NotifierSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Limits of reading the events streams and of writing to clients, each a named setting."""

    env_prefix: ClassVar[str] = "NOTIFIER_"

    # XREAD BLOCK per call; short enough that a silent network drop is noticed.
    read_block_ms: int = 5_000
    # Entries per XREAD; a batch is fanned out without yielding, so this bounds that stretch.
    read_count: int = 100
    retry_min_ms: int = 100
    retry_max_ms: int = 5_000
    # How long a push may wait for a client whose transport write buffer is full before the
    # client is dropped as slow; 0 means not at all.
    send_timeout_ms: int = 0
    close_timeout_ms: int = 1_000
    redis_timeout_ms: int = 2_000

    def __post_init__(self) -> None:
        if self.read_block_ms < 1 or self.read_count < 1:
            raise SettingsError("NOTIFIER_READ_BLOCK_MS and NOTIFIER_READ_COUNT must be positive")
        if not 0 < self.retry_min_ms <= self.retry_max_ms:
            raise SettingsError("need 0 < NOTIFIER_RETRY_MIN_MS <= NOTIFIER_RETRY_MAX_MS")
        if self.send_timeout_ms < 0 or self.close_timeout_ms < 0 or self.redis_timeout_ms < 1:
            raise SettingsError("NOTIFIER_*_TIMEOUT_MS must not be negative")
