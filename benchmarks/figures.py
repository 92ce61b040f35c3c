"""What a run measured: figures per scenario, their targets, and their ratio to the raw limit.

Pure values and functions; the scenarios fill them, `benchmarks.report` writes them out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

# How a figure relates to the raw Redis limit of the same run (scenario 1).
Kind = Literal["rate", "latency", "other"]

# The two reference figures of scenario 1, by key.
RAW_RATE_KEY = "raw.consume"
RAW_ROUND_TRIP_KEY = "raw.round_trip.p50"


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """A goal from issue 10: the figure should be at least or at most `value`."""

    op: Literal[">=", "<="]
    value: float

    def met_by(self, figure: float) -> bool:
        """Whether `figure` reaches this target."""
        return figure >= self.value if self.op == ">=" else figure <= self.value

    def __str__(self) -> str:
        return f"{'≥' if self.op == '>=' else '≤'} {format_number(self.value)}"


def at_least(value: float) -> Target:
    """The figure should be `value` or more."""
    return Target(op=">=", value=value)


def at_most(value: float) -> Target:
    """The figure should be `value` or less."""
    return Target(op="<=", value=value)


class Figure(msgspec.Struct, frozen=True, kw_only=True):
    """One measured number.

    `ratio` is filled once the run's raw limit is known: a rate as a fraction of the raw
    consumer's entries/s, a latency as a multiple of one raw XADD round trip.
    """

    key: str
    label: str
    value: float
    unit: str
    kind: Kind = "other"
    target: Target | None = None
    ratio: float | None = None

    @property
    def met(self) -> bool | None:
        """Whether the target is reached; None without one."""
        return None if self.target is None else self.target.met_by(self.value)


class ScenarioResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one scenario measured, what it noticed, and the error that stopped it if any."""

    name: str
    title: str
    figures: tuple[Figure, ...] = ()
    notes: tuple[str, ...] = ()
    error: str | None = None
    duration_s: float = 0.0


class RawLimit(msgspec.Struct, frozen=True, kw_only=True):
    """The references every figure is compared with, from scenario 1 of the same run."""

    rate_per_s: float
    round_trip_ms: float


class Host(msgspec.Struct, frozen=True, kw_only=True):
    """The machine and versions a run measured on."""

    cpus: int
    load_1m: float
    python: str
    redis: str
    commit: str


class RunResult(msgspec.Struct, frozen=True, kw_only=True):
    """One run of `make bench`: when, where, with which sizes, and every scenario's result."""

    started_at: str
    duration_s: float
    host: Host
    config: dict[str, object]
    raw_limit: RawLimit | None
    scenarios: tuple[ScenarioResult, ...]


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0 < q <= 100) of `values`; NaN when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def latency_figures(
    key: str,
    label: str,
    values_ms: Sequence[float],
    *,
    quantiles: Iterable[int] = (50, 95, 99),
    p99_target: Target | None = None,
    p95_target: Target | None = None,
) -> list[Figure]:
    """`label` p50/p95/p99 (and max) in ms, with the issue's targets where it sets them."""
    targets = {95: p95_target, 99: p99_target}
    figures = [
        Figure(
            key=f"{key}.p{q}",
            label=f"{label} p{q}",
            value=percentile(values_ms, q),
            unit="ms",
            kind="latency",
            target=targets.get(q),
        )
        for q in quantiles
    ]
    figures.append(
        Figure(
            key=f"{key}.max",
            label=f"{label} max",
            value=max(values_ms) if values_ms else math.nan,
            unit="ms",
            kind="latency",
        )
    )
    return figures


def raw_limit_of(scenarios: Iterable[ScenarioResult]) -> RawLimit | None:
    """The raw consumer rate and round trip measured in this run, if scenario 1 measured them."""
    found = {figure.key: figure.value for result in scenarios for figure in result.figures}
    rate, round_trip = found.get(RAW_RATE_KEY), found.get(RAW_ROUND_TRIP_KEY)
    if rate is None or round_trip is None or not rate > 0 or not round_trip > 0:
        return None
    return RawLimit(rate_per_s=rate, round_trip_ms=round_trip)


def with_ratios(result: ScenarioResult, limit: RawLimit | None) -> ScenarioResult:
    """`result` with every rate and latency figure's ratio to `limit` filled in."""
    if limit is None:
        return result
    figures = tuple(_with_ratio(figure, limit) for figure in result.figures)
    return msgspec.structs.replace(result, figures=figures)


def _with_ratio(figure: Figure, limit: RawLimit) -> Figure:
    if figure.kind == "rate":
        return msgspec.structs.replace(figure, ratio=figure.value / limit.rate_per_s)
    if figure.kind == "latency":
        return msgspec.structs.replace(figure, ratio=figure.value / limit.round_trip_ms)
    return figure


def format_number(value: float) -> str:
    """A number as the table shows it: thousands separated, about three significant digits."""
    if not math.isfinite(value):
        return "n/a" if math.isnan(value) else str(value)
    magnitude = abs(value)
    if magnitude < 0.0005:
        return "0"
    if magnitude >= 100 or (value == int(value) and magnitude >= 10):
        return f"{value:,.0f}"
    return f"{value:.1f}" if magnitude >= 10 else f"{value:.3g}"
