"""Every runtime setting: its key, value type with bounds, default and meaning, in one place.

A value is found in this order, first match wins:
1. the row stored in PostgreSQL (`system_settings`), set by an admin through the gateway;
2. the value the service started with from its environment (`LOG_LEVEL`, `JOBS_*`, ...), when
   it registered one with its listener;
3. the default here.

So a stored row wins over the environment at run time, and deleting the row returns each
service to its own starting value. Values are JSON: a setting's type converts from JSON with
msgspec (strictly: "60" is not an int) and its JSON Schema is what the API shows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, cast

import msgspec

from shared.ratelimit import MAX_BURST, MAX_PER_S, MIN_PER_S, RateLimit, parse_rate_limits
from shared.settings import LogLevel

T = TypeVar("T")

MIN_TTL_S = 60
MAX_TTL_S = 365 * 24 * 3600
MAX_RETRY_DELAY_S = 7 * 24 * 3600.0
MAX_RETRIES = 25


class InvalidSettingError(ValueError):
    """A value that a setting's type or bounds refuse, or a key the catalog does not know."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


@dataclass(frozen=True, kw_only=True)
class Setting(Generic[T]):
    """One runtime setting; `type` is a msgspec type (bounds in `Meta`) whose values are `T`."""

    key: str
    type: object
    default: T
    description: str
    # A check beyond what the type says (a format, say): raises ValueError saying what is wrong.
    check: Callable[[T], object] | None = None

    def __post_init__(self) -> None:
        # A default that its own type refuses is a mistake in this module: fail on import.
        self.convert(self.to_json(self.default))

    def convert(self, raw: object) -> T:
        """The typed value of a JSON value, or InvalidSettingError saying why not."""
        try:
            value = cast(T, msgspec.convert(raw, self.type))
            if self.check is not None:
                self.check(value)
        except (msgspec.ValidationError, ValueError) as exc:
            raise InvalidSettingError(self.key, str(exc)) from exc
        return value

    def to_json(self, value: T) -> Any:
        """The JSON form of a value, as stored in PostgreSQL and shown by the API."""
        return msgspec.to_builtins(value)

    def schema(self) -> dict[str, Any]:
        """The JSON Schema every value must match."""
        return msgspec.json.schema(self.type)


class JobRate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An allowance of new jobs: `per_s` a second on average, up to `burst` at once."""

    per_s: Annotated[
        float, msgspec.Meta(ge=MIN_PER_S, le=MAX_PER_S, description="Jobs a second, on average.")
    ]
    burst: Annotated[
        int, msgspec.Meta(ge=1, le=MAX_BURST, description="Jobs at once: at least a batch's size.")
    ]

    def limit(self) -> RateLimit:
        """The same allowance as the limit `shared.ratelimit` enforces."""
        return RateLimit(per_s=self.per_s, burst=self.burst)

    @classmethod
    def of(cls, limit: RateLimit) -> JobRate:
        """The setting's value for a limit a service starts with."""
        return cls(per_s=limit.per_s, burst=limit.burst)


Ttl = Annotated[int, msgspec.Meta(ge=MIN_TTL_S, le=MAX_TTL_S)]
RetryDelay = Annotated[float, msgspec.Meta(gt=0, le=MAX_RETRY_DELAY_S)]

LOG_LEVEL = Setting[LogLevel](
    key="log_level",
    type=LogLevel,
    default="INFO",
    description="The root logger's level in every service.",
)
COMPLETED_TTL_S = Setting[int](
    key="jobs.completed_ttl_s",
    type=Ttl,
    default=24 * 3600,
    description="Seconds a completed (or cancelled) job's record stays readable.",
)
FAILED_TTL_S = Setting[int](
    key="jobs.failed_ttl_s",
    type=Ttl,
    default=7 * 24 * 3600,
    description="Seconds a dead-lettered job's record stays readable.",
)
RETRY_SCHEDULE_S = Setting[tuple[float, ...]](
    key="worker.retry_schedule_s",
    type=Annotated[tuple[RetryDelay, ...], msgspec.Meta(min_length=1, max_length=MAX_RETRIES)],
    default=(10.0, 60.0, 300.0),
    description="Seconds before each retry of a failed job; the last repeats for later ones.",
)
WORKER_CONCURRENCY = Setting[int](
    key="worker.concurrency",
    type=Annotated[int, msgspec.Meta(ge=1, le=1000)],
    default=32,
    description="Jobs each worker process runs at once, up to the WORKER_CONCURRENCY it started "
    "with (its consumers' capacity); lowering it lets running jobs finish.",
)
WORKER_RATE_LIMITS = Setting[str](
    key="worker.rate_limits",
    type=Annotated[str, msgspec.Meta(max_length=2000)],
    default="",
    description="Starts per job type and per queue, for all workers: e.g. "
    "'demo.echo=10/s:5,*=100/m' (* a whole queue); empty for none.",
    check=parse_rate_limits,
)
JOB_RATE_PER_USER = Setting[JobRate | None](
    key="gateway.job_rate_per_user",
    type=JobRate | None,
    # The gateway's own default (GATEWAY_JOB_RATE_PER_USER, GATEWAY_JOB_BURST_PER_USER).
    default=JobRate(per_s=50.0, burst=1000),
    description="Jobs each user may create through the gateway; null for no limit.",
)

CATALOG: Mapping[str, Setting[Any]] = {
    setting.key: setting
    for setting in (
        LOG_LEVEL,
        COMPLETED_TTL_S,
        FAILED_TTL_S,
        RETRY_SCHEDULE_S,
        WORKER_CONCURRENCY,
        WORKER_RATE_LIMITS,
        JOB_RATE_PER_USER,
    )
}
