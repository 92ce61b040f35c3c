"""2. Enqueue: jobs/s through the Python API, one by one and batched, and over HTTP."""

from __future__ import annotations

import asyncio
import time

import msgspec

from benchmarks.context import BenchContext
from benchmarks.figures import Figure, ScenarioResult, at_most, latency_figures, percentile
from benchmarks.httpload import PostConnection
from benchmarks.jobs import drop_keys, echo_envelope, echo_submission
from benchmarks.meters import CpuMeter
from benchmarks.profiling import profiled
from benchmarks.stack import ENQUEUE_QUEUE, GATEWAY
from shared.streams import QueueKeys

NAME = "enqueue"
TITLE = "2. Enqueue"

_OWNER = "bench-enqueue"


async def run(ctx: BenchContext) -> ScenarioResult:
    """Enqueue through JobStore.enqueue, JobStore.enqueue_batch and POST /v1/jobs."""
    figures: list[Figure] = []
    notes: list[str] = []
    try:
        figures += await _one_by_one(ctx)
        figures += await _batched(ctx)
        http_figures, http_notes = await _over_http(ctx)
        figures += http_figures
        notes += http_notes
    finally:
        # Nobody consumes this queue: its jobs would only weigh on the later scenarios' Redis.
        await drop_keys(ctx.redis, f"{QueueKeys(ENQUEUE_QUEUE).tag}:*")
    return ScenarioResult(name=NAME, title=TITLE, figures=tuple(figures), notes=tuple(notes))


async def _one_by_one(ctx: BenchContext) -> list[Figure]:
    jobs = ctx.config.enqueue_single_jobs
    times_ms: list[float] = []
    started = time.perf_counter()
    for _ in range(jobs):
        envelope = echo_envelope(ENQUEUE_QUEUE, _OWNER)
        call_started = time.perf_counter()
        await ctx.store.enqueue(envelope)
        times_ms.append((time.perf_counter() - call_started) * 1000)
    elapsed_s = time.perf_counter() - started
    return [
        Figure(
            key="enqueue.single",
            label="JobStore.enqueue, awaited one by one",
            value=jobs / elapsed_s,
            unit="jobs/s",
            kind="rate",
        ),
        Figure(
            key="enqueue.single.p50",
            label="JobStore.enqueue call p50",
            value=percentile(times_ms, 50),
            unit="ms",
            kind="latency",
        ),
    ]


async def _batched(ctx: BenchContext) -> list[Figure]:
    jobs, size = ctx.config.enqueue_batch_jobs, ctx.config.enqueue_batch_size
    started = time.perf_counter()
    for first in range(0, jobs, size):
        batch = [echo_envelope(ENQUEUE_QUEUE, _OWNER) for _ in range(min(size, jobs - first))]
        await ctx.store.enqueue_batch(batch)
    elapsed_s = time.perf_counter() - started
    return [
        Figure(
            key="enqueue.batch",
            label=f"JobStore.enqueue_batch, {size} a batch",
            value=jobs / elapsed_s,
            unit="jobs/s",
            kind="rate",
        )
    ]


async def _over_http(ctx: BenchContext) -> tuple[list[Figure], list[str]]:
    """`http_clients` clients, each its own user and connection, POST until `http_jobs` are in."""
    config, stack = ctx.config, ctx.stack
    gateway = stack.service(GATEWAY)
    body = msgspec.json.encode(echo_submission(ENQUEUE_QUEUE))
    remaining = config.http_jobs
    times_ms: list[float] = []
    failures: list[str] = []

    async def client(index: int, ready: asyncio.Barrier) -> None:
        nonlocal remaining
        headers = {"Authorization": f"Bearer {stack.token(f'bench-http-{index}')}"}
        async with PostConnection(f"{gateway.base_url}/v1/jobs", body, headers) as connection:
            # One request outside the measure opens the connection, as a running client has.
            await connection.post()
            await ready.wait()
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                status, answer = await connection.post()
                times_ms.append((time.perf_counter() - started) * 1000)
                if status != 202:
                    failures.append(f"{status} {answer[:200].decode(errors='replace')}")

    ready = asyncio.Barrier(config.http_clients + 1)
    pid = stack.pid(GATEWAY)
    async with profiled("enqueue-http-gateway", pid, ctx.profile_dir) as profile:
        async with asyncio.TaskGroup() as tasks:
            for index in range(config.http_clients):
                tasks.create_task(client(index, ready))
            await ready.wait()
            cpu = CpuMeter([pid]).start()
            started = time.perf_counter()
        elapsed_s = time.perf_counter() - started
        gateway_cpu = cpu.stop()
    label = f"POST /v1/jobs, {config.http_clients} clients"
    figures = [
        Figure(
            key="enqueue.http",
            label=label,
            value=(len(times_ms) - len(failures)) / elapsed_s,
            unit="jobs/s",
            kind="rate",
        ),
        *latency_figures("enqueue.http", label, times_ms, p95_target=at_most(20)),
        Figure(key="enqueue.http.cpu", label="gateway CPU", value=gateway_cpu, unit="% core"),
        Figure(
            key="enqueue.http.errors",
            label="POST /v1/jobs not 202",
            value=len(failures),
            unit="requests",
            target=at_most(0),
        ),
    ]
    notes = [
        f"HTTP: clients in the measuring process (benchmarks.httpload), each its own user "
        f"and keep-alive connection; the gateway's per-user job limit raised out of the way; "
        f"{len(failures)} failures{': ' + failures[0] if failures else ''}",
        *profile.summaries(),
    ]
    return figures, notes
