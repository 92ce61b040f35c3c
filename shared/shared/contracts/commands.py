"""The job types Conduit ships, each with the payload its handler takes.

The gateway validates a submission's payload against this catalog; the worker binds a handler to
each entry. A new job type adds its payload Struct here and its handler in the worker.
"""

from __future__ import annotations

from typing import Annotated

import msgspec


class Echo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`demo.echo`: returns its payload."""

    text: Annotated[str, msgspec.Meta(max_length=10_000)]


class Sleep(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`demo.sleep`: sleeps, reporting progress after each step."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=3600)]
    steps: Annotated[int, msgspec.Meta(ge=1, le=100)] = 4


class Fail(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """`demo.fail`: fails its first `times` attempts, then succeeds."""

    times: Annotated[int, msgspec.Meta(ge=0, le=100)] = 1
    message: Annotated[str, msgspec.Meta(max_length=1_000)] = "demo failure"


JOB_PAYLOADS: dict[str, type[msgspec.Struct]] = {
    "demo.echo": Echo,
    "demo.sleep": Sleep,
    "demo.fail": Fail,
}
