"""4. Latency under an open-loop load: straight into Redis, then through gateway and notifier.

Straight: jobs enqueued with JobStore.enqueue on a fixed schedule, one worker process running
them; enqueue→start and enqueue→completed come from each job's record (created, started and
finished ms). Through the services: `POST /v1/jobs` on the same schedule, and the time until one
WebSocket client of the job's owner receives the job's events from the notifier.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec

from benchmarks.context import BenchContext
from benchmarks.figures import Figure, ScenarioResult, at_most, latency_figures
from benchmarks.httpload import post_open_loop
from benchmarks.jobs import (
    completed_count,
    echo_envelope,
    echo_submission,
    job_times,
    wait_completed,
)
from benchmarks.meters import CpuMeter
from benchmarks.openloop import open_loop
from benchmarks.profiling import profiled
from benchmarks.stack import GATEWAY, LATENCY_QUEUE, NOTIFIER, WORKER
from shared.client import connect
from shared.contracts.events import JobCompleted, JobEvent, JobQueued
from shared.contracts.jobs import JobAccepted
from shared.contracts.ws import EventPush, Welcome

NAME = "latency"
TITLE = "4. Latency at an open-loop load"

_DIRECT_OWNER = "bench-latency"
_GATEWAY_OWNER = "bench-latency-http"
_accepted = msgspec.json.Decoder(JobAccepted)


class _Arrivals:
    """When the WebSocket client first received each job's queued and completed events."""

    def __init__(self) -> None:
        self.queued: dict[str, int] = {}
        self.completed: dict[str, int] = {}
        self._changed = asyncio.Event()

    def record(self, event: JobEvent, received_ns: int) -> None:
        """Note an event's arrival (perf_counter ns), keeping the first of duplicates."""
        if isinstance(event, JobQueued):
            self.queued.setdefault(event.job_id, received_ns)
        elif isinstance(event, JobCompleted):
            self.completed.setdefault(event.job_id, received_ns)
            self._changed.set()

    async def wait_completed(self, job_ids: set[str], timeout_s: float) -> None:
        """Return once every job of `job_ids` has its completed event, or after `timeout_s`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while not job_ids <= self.completed.keys():
                    self._changed.clear()
                    await self._changed.wait()

    @staticmethod
    def since(arrived: dict[str, int], sent: dict[str, int]) -> list[float]:
        """Milliseconds from each job's send to its event's arrival, for those that arrived."""
        return [(arrived[job] - at) / 1e6 for job, at in sent.items() if job in arrived]


async def run(ctx: BenchContext) -> ScenarioResult:
    """The straight load, then the load through the gateway and the notifier."""
    config, stack = ctx.config, ctx.stack
    async with profiled("latency-worker", stack.pid(WORKER), ctx.profile_dir) as worker:
        direct = await _direct(ctx)
    async with (
        profiled("latency-gateway", stack.pid(GATEWAY), ctx.profile_dir) as gateway,
        profiled("latency-notifier", stack.pid(NOTIFIER), ctx.profile_dir) as notifier,
    ):
        through = await _through_services(ctx)
    notes = (
        f"{config.latency_rate_per_s:g} jobs/s for {config.latency_duration_s:g} s each; "
        f"late: completed more than {config.late_ms} ms after enqueue, or never",
        "times from job records are whole ms (created is stamped before the enqueue call)",
        *worker.summaries(),
        *gateway.summaries(),
        *notifier.summaries(),
    )
    return ScenarioResult(name=NAME, title=TITLE, figures=(*direct, *through), notes=notes)


async def _direct(ctx: BenchContext) -> list[Figure]:
    config = ctx.config
    before = await completed_count(ctx.redis, LATENCY_QUEUE)
    ids: list[str] = []

    async def enqueue(_index: int) -> None:
        envelope = echo_envelope(LATENCY_QUEUE, _DIRECT_OWNER)
        ids.append(envelope.id)
        await ctx.store.enqueue(envelope)

    cpu = CpuMeter([ctx.stack.pid(WORKER)]).start()
    load = await open_loop(config.latency_rate_per_s, config.latency_duration_s, enqueue)
    worker_cpu = cpu.stop()
    await wait_completed(ctx.redis, LATENCY_QUEUE, before + len(ids), config.wait_timeout_s)
    times = await job_times(ctx.redis, LATENCY_QUEUE, ids)
    to_start = [t.started_ms - t.created_ms for t in times if t.started_ms is not None]
    to_done = [t.finished_ms - t.created_ms for t in times if t.finished_ms is not None]
    late = len(ids) - len(to_done) + sum(1 for ms in to_done if ms > config.late_ms)
    return [
        *latency_figures("latency.start", "enqueue→start", to_start, p99_target=at_most(5)),
        *latency_figures("latency.completed", "enqueue→completed", to_done, p99_target=at_most(10)),
        Figure(key="latency.late", label="late jobs", value=late, unit="jobs", target=at_most(0)),
        Figure(key="latency.worker_cpu", label="worker CPU", value=worker_cpu, unit="% core"),
        Figure(
            key="latency.lag",
            label="load generator behind schedule, max",
            value=load.lag_max_ms,
            unit="ms",
        ),
        Figure(key="latency.failed", label="enqueue errors", value=load.failed, unit="calls"),
    ]


async def _through_services(ctx: BenchContext) -> list[Figure]:
    config, stack = ctx.config, ctx.stack
    gateway, ws_url = stack.service(GATEWAY), stack.ws_url(NOTIFIER)
    token = stack.token(_GATEWAY_OWNER)
    arrivals = _Arrivals()
    async with connect(ws_url, token, reconnect=False) as client:
        messages = client.messages()
        welcome = await anext(messages)
        if not isinstance(welcome, Welcome):
            raise RuntimeError(f"the notifier greeted with {welcome!r}")

        async def listen() -> None:
            async for message in messages:
                if isinstance(message, EventPush):
                    arrivals.record(message.event, time.perf_counter_ns())

        listener = asyncio.create_task(listen())
        try:
            cpu = {
                name: CpuMeter([stack.pid(name)]).start() for name in (GATEWAY, NOTIFIER, WORKER)
            }
            load = await post_open_loop(
                f"{gateway.base_url}/v1/jobs",
                msgspec.json.encode(echo_submission(LATENCY_QUEUE)),
                {"Authorization": f"Bearer {token}"},
                connections=config.http_clients,
                rate_per_s=config.latency_rate_per_s,
                duration_s=config.latency_duration_s,
            )
            used = {name: meter.stop() for name, meter in cpu.items()}
            posted = {
                _accepted.decode(answer.body).id: answer.fired_ns
                for answer in load.answers
                if answer.status == 202
            }
            await arrivals.wait_completed(set(posted), config.wait_timeout_s)
            await asyncio.sleep(config.settle_s)
        finally:
            listener.cancel()
    refused = [answer for answer in load.answers if answer.status != 202]
    failures = [
        *load.failures,
        *(f"{a.status} {a.body[:120].decode(errors='replace')}" for a in refused),
    ]
    answered_ms = [(answer.answered_ns - answer.fired_ns) / 1e6 for answer in load.answers]
    to_done = arrivals.since(arrivals.completed, posted)
    label = f"POST /v1/jobs answered ({config.http_clients} connections)"
    return [
        *latency_figures("latency.http", label, answered_ms),
        *latency_figures(
            "latency.ws_queued",
            "POST→WebSocket job.queued",
            arrivals.since(arrivals.queued, posted),
        ),
        *latency_figures(
            "latency.ws_completed", "POST→WebSocket job.completed", to_done, p99_target=at_most(50)
        ),
        Figure(
            key="latency.ws_missing",
            label="jobs without job.completed on the WebSocket",
            value=load.schedule.sent - len(to_done),
            unit="jobs",
            target=at_most(0),
        ),
        *(
            Figure(key=f"latency.{name}_cpu", label=f"{name} CPU", value=value, unit="% core")
            for name, value in used.items()
        ),
        Figure(
            key="latency.http_failed",
            label="POST not 202" + (f" (first: {failures[0]})" if failures else ""),
            value=len(failures),
            unit="requests",
            target=at_most(0),
        ),
    ]
