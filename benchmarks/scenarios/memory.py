"""6. Memory: Redis after many completed jobs (retention on), the notifier per idle connection."""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.clientprocs import client_processes
from benchmarks.context import BenchContext
from benchmarks.figures import Figure, ScenarioResult
from benchmarks.jobs import completed_count, echo_envelope, wait_completed
from benchmarks.meters import MIB, rss_bytes
from benchmarks.stack import IDLE_NOTIFIER, MEMORY_QUEUE

NAME = "memory"
TITLE = "6. Memory"

_OWNER = "bench-memory"
_BATCH = 1_000
_KIB = 1024


async def run(ctx: BenchContext) -> ScenarioResult:
    """Redis used_memory before and after `memory_jobs` jobs completed; notifier RSS per idle
    connection."""
    redis_figures = await _redis_memory(ctx)
    notifier_figures, notes = await _idle_connections(ctx)
    notes.insert(
        0,
        f"Redis: {ctx.config.memory_jobs:,} demo.echo jobs run by one worker, records kept "
        f"{ctx.store.settings.completed_ttl_s} s, events stream capped near "
        f"{ctx.store.settings.events_maxlen:,} entries; growth measured on a queue of its own",
    )
    return ScenarioResult(
        name=NAME, title=TITLE, figures=(*redis_figures, *notifier_figures), notes=tuple(notes)
    )


async def _used_memory(ctx: BenchContext) -> int:
    info: dict[str, Any] = await ctx.redis.info("memory")
    return int(info["used_memory"])


async def _redis_memory(ctx: BenchContext) -> list[Figure]:
    jobs = ctx.config.memory_jobs
    before_count = await completed_count(ctx.redis, MEMORY_QUEUE)
    before = await _used_memory(ctx)
    for first in range(0, jobs, _BATCH):
        batch = [echo_envelope(MEMORY_QUEUE, _OWNER) for _ in range(min(_BATCH, jobs - first))]
        await ctx.store.enqueue_batch(batch)
    done = await wait_completed(
        ctx.redis, MEMORY_QUEUE, before_count + jobs, ctx.config.wait_timeout_s
    )
    if done < before_count + jobs:
        raise TimeoutError(f"{done - before_count} of {jobs} jobs completed in time")
    after = await _used_memory(ctx)
    return [
        Figure(
            key="memory.redis",
            label=f"Redis used_memory after {jobs:,} completed jobs",
            value=after / MIB,
            unit="MiB",
        ),
        Figure(
            key="memory.redis.per_job",
            label="Redis used_memory growth per completed job",
            value=(after - before) / jobs,
            unit="bytes",
        ),
    ]


async def _idle_connections(ctx: BenchContext) -> tuple[list[Figure], list[str]]:
    stack, count = ctx.stack, ctx.config.idle_connections
    pid = stack.pid(IDLE_NOTIFIER)
    ws_url = stack.ws_url(IDLE_NOTIFIER)
    subs = [f"idle-{index}" for index in range(count)]
    before = rss_bytes(pid)
    async with client_processes(
        ws_url,
        stack.jwt_secret,
        subs,
        processes=ctx.config.fanout_client_processes,
        log_dir=stack.root / "logs",
    ) as clients:
        ready = await clients.start(ctx.config.wait_timeout_s)
        # The presence flush and any lazily built state settle within a moment.
        await asyncio.sleep(ctx.config.settle_s)
        after = rss_bytes(pid)
        await clients.stop(ctx.config.wait_timeout_s)
    notes = [
        f"notifier: a process idle since the run began, then {ready.connected:,} idle clients "
        "(each its own user), measured settle_s after they connected"
    ]
    if ready.connected < count:
        notes.append(f"reduced scale: {ready.connected} of {count} idle clients connected")
    return [
        Figure(
            key="memory.notifier", label="notifier RSS, no clients", value=before / MIB, unit="MiB"
        ),
        Figure(
            key="memory.notifier.per_connection",
            label="notifier RSS per idle connection",
            value=(after - before) / max(1, ready.connected) / _KIB,
            unit="KiB",
        ),
    ], notes
