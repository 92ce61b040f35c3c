"""The retry policy: pure decisions about what follows a failed attempt."""

from __future__ import annotations

import msgspec


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """When a failed attempt is retried.

    By default a fixed schedule: the n-th retry waits `schedule_s[n-1]`, the last wait repeating.
    With `exponential_base_s` set, the n-th retry waits `base * 2**(n-1)` capped at `cap_s`, of
    which a random half is jitter, so that jobs failing together do not retry together.
    """

    schedule_s: tuple[float, ...] = (10.0, 60.0, 300.0)
    exponential_base_s: float | None = None
    cap_s: float = 300.0
    retries: int | None = None

    def __post_init__(self) -> None:
        if any(wait < 0 for wait in self.schedule_s) or self.cap_s < 0:
            raise ValueError("retry waits must be >= 0")
        if self.exponential_base_s is not None and self.exponential_base_s <= 0:
            raise ValueError("exponential_base_s must be > 0")
        if self.retries is not None and self.retries < 0:
            raise ValueError("retries must be >= 0")

    @property
    def default_max_attempts(self) -> int:
        """One first attempt plus the retries: one per scheduled wait unless `retries` says."""
        return 1 + (self.retries if self.retries is not None else len(self.schedule_s))

    def delay_ms(self, failed_attempt: int, jitter: float = 0.5) -> int:
        """How long to wait after attempt `failed_attempt` (from 1) failed.

        `jitter` in [0, 1) picks where in the jitter range the wait falls; callers pass a random
        number, tests a fixed one.
        """
        if self.exponential_base_s is not None:
            ceiling = min(self.cap_s, self.exponential_base_s * 2.0 ** min(failed_attempt - 1, 60))
            return round(ceiling * (0.5 + jitter / 2) * 1000)
        if not self.schedule_s:
            return 0
        index = min(failed_attempt, len(self.schedule_s)) - 1
        return round(self.schedule_s[index] * 1000)


def retry_due_ms(
    policy: RetryPolicy,
    *,
    failed_attempt: int,
    max_attempts: int,
    permanent: bool,
    now_ms: int,
    jitter: float = 0.5,
) -> int | None:
    """When the next attempt is due, or None when the job goes to the dead letters instead."""
    if permanent or failed_attempt >= max_attempts:
        return None
    return now_ms + policy.delay_ms(failed_attempt, jitter)
