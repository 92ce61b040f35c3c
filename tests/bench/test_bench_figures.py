"""The benchmark's pure parts: percentiles, ratios to the raw limit, targets, marks, the table."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchmarks.clientprocs import merge_reports
from benchmarks.config import load_config
from benchmarks.figures import (
    RAW_RATE_KEY,
    RAW_ROUND_TRIP_KEY,
    Figure,
    Host,
    Kind,
    RawLimit,
    RunResult,
    ScenarioResult,
    at_least,
    at_most,
    format_number,
    percentile,
    raw_limit_of,
    with_ratios,
)
from benchmarks.profiling import OUTSIDE, busiest_frames, innermost_conduit_frames
from benchmarks.report import markdown
from benchmarks.wsclients import PhaseTally, Report, mark, read_mark
from shared.settings import SettingsError


def test_percentile_is_nearest_rank() -> None:
    values = [float(value) for value in range(100, 0, -1)]
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert math.isnan(percentile([], 50))


@given(
    st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1),
    st.integers(min_value=1, max_value=100),
)
def test_percentile_is_a_value_with_at_least_q_percent_at_or_below(
    values: list[float], q: int
) -> None:
    found = percentile(values, q)
    assert found in values
    assert sum(1 for value in values if value <= found) >= q / 100 * len(values)


def _figure(key: str, value: float, kind: Kind = "other") -> Figure:
    return Figure(key=key, label=key, value=value, unit="u", kind=kind)


def test_rates_and_latencies_get_ratios_to_the_raw_limit_and_others_none() -> None:
    result = ScenarioResult(
        name="s",
        title="S",
        figures=(_figure("r", 5_000, "rate"), _figure("l", 3.0, "latency"), _figure("o", 7)),
    )

    rated = with_ratios(result, RawLimit(rate_per_s=50_000, round_trip_ms=0.15))

    assert [figure.ratio for figure in rated.figures] == [pytest.approx(0.1), 20.0, None]
    assert with_ratios(result, None) == result


def test_raw_limit_comes_from_scenario_one_and_is_none_without_it() -> None:
    raw = ScenarioResult(
        name="raw",
        title="raw",
        figures=(_figure(RAW_RATE_KEY, 40_000, "rate"), _figure(RAW_ROUND_TRIP_KEY, 0.2)),
    )
    assert raw_limit_of([raw]) == RawLimit(rate_per_s=40_000, round_trip_ms=0.2)
    assert raw_limit_of([ScenarioResult(name="raw", title="raw", error="down")]) is None


def test_targets_say_whether_a_figure_meets_them() -> None:
    assert at_least(12_000).met_by(12_000)
    assert not at_least(12_000).met_by(11_999.9)
    assert at_most(5).met_by(4.2)
    assert not at_most(0).met_by(1)
    assert str(at_least(12_000)) == "≥ 12,000"


def test_numbers_are_shown_with_about_three_digits() -> None:
    assert format_number(13_512.7) == "13,513"
    assert format_number(2.4567) == "2.46"
    assert format_number(1e-12) == "0"
    assert format_number(math.nan) == "n/a"


def test_a_mark_carries_phase_and_send_time_and_other_messages_are_not_marks() -> None:
    assert read_mark(mark("room", 1_700_000_000_123_456_789)) == (
        "room",
        1_700_000_000_123_456_789,
    )
    assert read_mark("step 1 of 3") is None
    assert read_mark("") is None


def test_reports_of_client_processes_add_up() -> None:
    first = Report(
        phases={"room": PhaseTally(received=2, latencies_us=[10, 20])}, closed_early=1, unmarked=0
    )
    second = Report(
        phases={"room": PhaseTally(received=1, latencies_us=[30])}, closed_early=0, unmarked=2
    )

    merged = merge_reports([first, second])

    assert merged.phases["room"].received == 3
    assert sorted(merged.phases["room"].latencies_us) == [10, 20, 30]
    assert (merged.closed_early, merged.unmarked) == (1, 2)


def test_the_table_marks_missed_targets_and_failed_scenarios() -> None:
    missed = Figure(
        key="drain.one", label="drain", value=3_000, unit="jobs/s", target=at_least(12_000)
    )
    run = RunResult(
        started_at="2026-01-01T00:00:00Z",
        duration_s=1.0,
        host=Host(cpus=2, load_1m=0.5, python="3.11", redis="7.0", commit="abc"),
        config={},
        raw_limit=None,
        scenarios=(
            ScenarioResult(name="drain", title="3. Drain", figures=(missed,)),
            ScenarioResult(name="fanout", title="5. Fan-out", error="RuntimeError: boom"),
        ),
    )

    table = markdown(run)

    assert "| 3. Drain | drain | 3,000 | jobs/s |  | ≥ 12,000 | **no** |" in table
    assert "| 5. Fan-out | **failed**: see below |" in table
    assert "RuntimeError: boom" in table


def test_sizes_come_from_the_environment_over_the_tiny_ones() -> None:
    config = load_config(tiny=True, environ={"BENCH_DRAIN_JOBS": "7"})
    assert config.drain_jobs == 7
    assert config.http_jobs == load_config(tiny=True, environ={}).http_jobs
    assert load_config(environ={}).drain_jobs == 20_000
    with pytest.raises(SettingsError):
        load_config(environ={"BENCH_DRAIN_JOBS": "0"})


def test_busiest_frames_count_own_samples_per_function_across_lines() -> None:
    collapsed = [
        "run (runner.py:10);start (jobstore.py:201);execute (pipeline.py:40) 6",
        "run (runner.py:10);start (jobstore.py:201);execute (pipeline.py:41) 2",
        "run (runner.py:10);encode (codec.py:5) 2",
        "not a sample line",
    ]

    top = busiest_frames(collapsed, 2)

    assert top == [("execute (pipeline.py)", 0.8), ("encode (codec.py)", 0.2)]


def test_samples_count_for_the_innermost_conduit_frame_or_for_outside() -> None:
    collapsed = [
        "main (worker/__main__.py:3);serve (shared/serving.py:9);consume (worker/app.py:5);"
        "start (shared/jobstore.py:201);execute (redis/client.py:40) 6",
        "main (worker/__main__.py:3);serve (shared/serving.py:9);_run_once (asyncio/base.py:1) 4",
    ]

    top = innermost_conduit_frames(collapsed, 3)

    assert top == [("start (shared/jobstore.py)", 0.6), (OUTSIDE, 0.4)]
