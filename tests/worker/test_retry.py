"""The retry policy: when a failed attempt is retried, and when it is dead-lettered."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from worker.retry import RetryPolicy, retry_due_ms

schedules = st.lists(st.floats(min_value=0, max_value=3600), max_size=6).map(tuple)


def test_default_schedule_waits_10s_60s_5min_then_repeats_the_last() -> None:
    policy = RetryPolicy()
    assert [policy.delay_ms(n) for n in (1, 2, 3, 4)] == [10_000, 60_000, 300_000, 300_000]
    assert policy.default_max_attempts == 4


@given(
    schedule=schedules,
    attempt=st.integers(min_value=1, max_value=50),
    max_attempts=st.integers(min_value=1, max_value=25),
    now=st.integers(min_value=0, max_value=2**42),
)
def test_a_transient_failure_is_retried_exactly_while_attempts_remain(
    schedule: tuple[float, ...], attempt: int, max_attempts: int, now: int
) -> None:
    policy = RetryPolicy(schedule_s=schedule)
    due = retry_due_ms(
        policy, failed_attempt=attempt, max_attempts=max_attempts, permanent=False, now_ms=now
    )
    if attempt >= max_attempts:
        assert due is None
    else:
        assert due is not None
        assert due >= now
        assert due - now == policy.delay_ms(attempt)


@given(attempt=st.integers(min_value=1, max_value=50), now=st.integers(min_value=0))
def test_a_permanent_failure_is_never_retried(attempt: int, now: int) -> None:
    due = retry_due_ms(
        RetryPolicy(), failed_attempt=attempt, max_attempts=25, permanent=True, now_ms=now
    )
    assert due is None


@given(schedule=schedules.filter(bool), attempt=st.integers(min_value=1, max_value=50))
def test_waits_never_shrink_along_a_sorted_schedule(
    schedule: tuple[float, ...], attempt: int
) -> None:
    policy = RetryPolicy(schedule_s=tuple(sorted(schedule)))
    assert policy.delay_ms(attempt + 1) >= policy.delay_ms(attempt)


@given(
    base=st.floats(min_value=0.01, max_value=100),
    cap=st.floats(min_value=0, max_value=3600),
    attempt=st.integers(min_value=1, max_value=200),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_exponential_waits_double_up_to_the_cap_with_at_most_half_of_jitter(
    base: float, cap: float, attempt: int, jitter: float
) -> None:
    policy = RetryPolicy(exponential_base_s=base, cap_s=cap, retries=5)
    ceiling_ms = min(cap, base * 2.0 ** min(attempt - 1, 60)) * 1000
    wait = policy.delay_ms(attempt, jitter)
    assert ceiling_ms / 2 - 1 <= wait <= ceiling_ms + 1
    assert policy.default_max_attempts == 6


def test_jitter_spreads_exponential_waits_between_half_and_all_of_the_step() -> None:
    policy = RetryPolicy(exponential_base_s=1.0, cap_s=60)
    assert [policy.delay_ms(3, jitter) for jitter in (0.0, 0.5, 0.999)] == [2000, 3000, 3998]
    assert policy.delay_ms(30, 0.0) == 30_000
