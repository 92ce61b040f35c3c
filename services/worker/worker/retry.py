"""The retry policy: pure decisions about what follows a failed attempt."""

from __future__ import annotations

import msgspec


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """A fixed schedule of waits: the n-th retry waits `schedule_s[n-1]`, the last one repeats."""

    schedule_s: tuple[float, ...] = (10.0, 60.0, 300.0)

    @property
    def default_max_attempts(self) -> int:
        """One first attempt plus one retry per scheduled wait."""
        return 1 + len(self.schedule_s)

    def delay_ms(self, failed_attempt: int) -> int:
        """How long to wait after attempt number `failed_attempt` (1-based) failed."""
        if not self.schedule_s:
            return 0
        index = min(failed_attempt, len(self.schedule_s)) - 1
        return round(self.schedule_s[index] * 1000)


def retry_due_ms(
    policy: RetryPolicy, *, failed_attempt: int, max_attempts: int, permanent: bool, now_ms: int
) -> int | None:
    """When the next attempt is due, or None when the job goes to the dead letters instead."""
    if permanent or failed_attempt >= max_attempts:
        return None
    return now_ms + policy.delay_ms(failed_attempt)
