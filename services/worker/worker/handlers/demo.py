"""Diagnostic job types: echo, sleep with progress, and fail-then-succeed."""

from __future__ import annotations

import asyncio

from shared.contracts.commands import Echo, Fail, Sleep
from worker.registry import JobContext, JobError, Registry
from worker.retry import RetryPolicy

# Demo failures retry quickly, so that a person trying Conduit sees the whole cycle in seconds.
DEMO_RETRY = RetryPolicy(schedule_s=(0.5, 1.0, 2.0))


class DemoFailureError(JobError):
    """The failure `demo.fail` asks for."""


async def echo(payload: Echo, ctx: JobContext) -> Echo:
    """Return the payload unchanged."""
    return payload


async def sleep(payload: Sleep, ctx: JobContext) -> dict[str, float]:
    """Sleep for `seconds` in `steps`, reporting progress after each."""
    for step in range(1, payload.steps + 1):
        await asyncio.sleep(payload.seconds / payload.steps)
        await ctx.progress(step / payload.steps, f"step {step} of {payload.steps}")
    return {"slept_s": payload.seconds}


async def fail(payload: Fail, ctx: JobContext) -> dict[str, int]:
    """Fail the first `times` attempts, then succeed."""
    if ctx.attempt <= payload.times:
        raise DemoFailureError(f"{payload.message} (attempt {ctx.attempt} of {payload.times})")
    return {"succeeded_on_attempt": ctx.attempt}


def register(registry: Registry) -> None:
    """Add the demo job types."""
    registry.add("demo.echo", echo)
    registry.add("demo.sleep", sleep)
    registry.add("demo.fail", fail, retry=DEMO_RETRY)
