"""Repeatable jobs: a job type and payload enqueued on a cron schedule or a fixed interval.

A definition names exactly one schedule: `cron` (five fields, UTC) or `every_s` (ticks at
multiples of `every_s` seconds since the Unix epoch, so every worker computes the same ticks).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from shared.contracts.jobs import DEFAULT_MAX_ATTEMPTS, SYSTEM_OWNER

# The owner of definitions written in code rather than through the API.

# Names go into Redis keys and URLs: no `:`, `/` or spaces.
RepeatableName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9._-]{1,64}$")]
CronExpression = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
IntervalSeconds = Annotated[int, msgspec.Meta(ge=1, le=366 * 24 * 3600)]
MaxAttempts = Annotated[int, msgspec.Meta(ge=1, le=25)]


class RepeatableSubmission(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of `POST /v1/repeatables`."""

    name: RepeatableName
    type: Annotated[str, msgspec.Meta(max_length=100)]
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: str | None = None
    cron: CronExpression | None = None
    every_s: IntervalSeconds | None = None
    max_attempts: MaxAttempts | None = None


class Repeatable(msgspec.Struct, frozen=True, kw_only=True):
    """A stored definition, as the scheduler reads it and `GET /v1/repeatables` lists it."""

    v: int = 1
    name: RepeatableName
    type: str
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    queue: str
    owner: str = SYSTEM_OWNER
    cron: CronExpression | None = None
    every_s: IntervalSeconds | None = None
    max_attempts: MaxAttempts = DEFAULT_MAX_ATTEMPTS
