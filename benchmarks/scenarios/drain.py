"""3. Drain: a backlog of no-op jobs worked off by one worker process, then by two.

The backlog is queued in one MULTI, so it appears at once and every worker, already blocked on
its read, starts together. The rate is taken from the job records: jobs over the time from the
first start to the last finish, so the measuring process's polling does not count.
"""

from __future__ import annotations

import math

import msgspec

from benchmarks.context import BenchContext
from benchmarks.figures import Figure, ScenarioResult, at_least
from benchmarks.jobs import completed_count, echo_envelope, job_times, wait_completed
from benchmarks.meters import CpuMeter
from benchmarks.profiling import profiled
from benchmarks.stack import DRAIN_ONE_QUEUE, DRAIN_TWO_QUEUE, SECOND_WORKER, WORKER

NAME = "drain"
TITLE = "3. Drain"

_OWNER = "bench-drain"


class DrainStats(msgspec.Struct, frozen=True, kw_only=True):
    """How fast a backlog went, and what it cost the workers and Redis."""

    jobs: int
    per_s: float
    steady_per_s: float
    worker_cpu_us_per_job: float
    redis_cpu_us_per_job: float


async def run(ctx: BenchContext) -> ScenarioResult:
    """Drain `drain_jobs` jobs with worker-a alone, then with worker-a and worker-b."""
    concurrency = ctx.config.worker_concurrency
    pid = ctx.stack.pid(WORKER)
    async with profiled("drain-one-worker", pid, ctx.profile_dir) as profile:
        one = await _drain(ctx, DRAIN_ONE_QUEUE, (WORKER,))
    figures = _figures("drain.one", f"1 process, concurrency {concurrency}", one)
    figures[0] = msgspec.structs.replace(figures[0], target=at_least(12_000))
    two = await _drain(ctx, DRAIN_TWO_QUEUE, (WORKER, SECOND_WORKER))
    figures += _figures("drain.two", f"2 processes, concurrency {concurrency} each", two)
    figures.append(
        Figure(
            key="drain.scaling",
            label="2 processes / 1 process",
            value=two.per_s / one.per_s,
            unit="x",
            target=at_least(1.6),
        )
    )
    notes = (
        "rate: jobs / (last finish - first start) from the job records, in ms; steady: "
        "the middle 80 % of finishes; CPU per job: the processes' CPU time / jobs (Redis's "
        "without the enqueue)",
        "worker-a consumes 4 queues (12 lanes, one busy at a time), worker-b 1 (3 lanes)",
        *profile.summaries(),
    )
    return ScenarioResult(name=NAME, title=TITLE, figures=tuple(figures), notes=notes)


async def _drain(ctx: BenchContext, queue: str, workers: tuple[str, ...]) -> DrainStats:
    jobs = ctx.config.drain_jobs
    before = await completed_count(ctx.redis, queue)
    envelopes = [echo_envelope(queue, _OWNER) for _ in range(jobs)]
    worker_cpu = CpuMeter([ctx.stack.pid(name) for name in workers]).start()
    await ctx.store.enqueue_batch(envelopes)
    # From here: the enqueue scripts ran inside EXEC, before its answer came back.
    redis_cpu = CpuMeter([ctx.stack.redis_pid()]).start()
    done = await wait_completed(ctx.redis, queue, before + jobs, ctx.config.wait_timeout_s)
    worker_cpu.stop()
    redis_cpu.stop()
    if done < before + jobs:
        raise TimeoutError(
            f"{done - before} of {jobs} jobs completed within {ctx.config.wait_timeout_s}s"
        )
    times = await job_times(ctx.redis, queue, [envelope.id for envelope in envelopes])
    starts = [time.started_ms for time in times if time.started_ms is not None]
    finishes = sorted(time.finished_ms for time in times if time.finished_ms is not None)
    window_ms = max(1, finishes[-1] - min(starts))
    low, high = (
        finishes[math.floor(len(finishes) * 0.1)],
        finishes[math.ceil(len(finishes) * 0.9) - 1],
    )
    return DrainStats(
        jobs=len(finishes),
        per_s=len(finishes) / window_ms * 1000,
        steady_per_s=0.8 * len(finishes) / max(1, high - low) * 1000,
        worker_cpu_us_per_job=worker_cpu.used_s / jobs * 1e6,
        redis_cpu_us_per_job=redis_cpu.used_s / jobs * 1e6,
    )


def _figures(key: str, label: str, stats: DrainStats) -> list[Figure]:
    return [
        Figure(key=key, label=label, value=stats.per_s, unit="jobs/s", kind="rate"),
        Figure(
            key=f"{key}.steady",
            label=f"{label}, steady",
            value=stats.steady_per_s,
            unit="jobs/s",
            kind="rate",
        ),
        Figure(
            key=f"{key}.worker_cpu",
            label=f"{label}: worker CPU per job",
            value=stats.worker_cpu_us_per_job,
            unit="µs",
        ),
        Figure(
            key=f"{key}.redis_cpu",
            label=f"{label}: Redis CPU per job",
            value=stats.redis_cpu_us_per_job,
            unit="µs",
        ),
    ]
