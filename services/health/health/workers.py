"""The worker check, from the workers' heartbeats (shared.heartbeats): one entry per live worker,
and a failure when none is live to take jobs.

Heartbeats rather than an HTTP probe of one worker URL: they cover every worker however many
run and wherever, they stop when a worker's event loop is stuck or it cannot reach Redis (when
it processes nothing, though its `/livez` may still answer), and they say what each one holds.
Restarting a dead process stays with compose and Kubernetes, which probe each worker's `/livez`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from redis.asyncio import Redis

from health.aggregate import Finding, WorkerDetails
from health.probes import Probe
from shared.clock import now_ms
from shared.heartbeats import Heartbeat, Heartbeats, read_heartbeats


def at(ms: int) -> datetime:
    """Unix milliseconds as an aware UTC datetime."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def details(heartbeat: Heartbeat) -> WorkerDetails:
    """What the document shows of a heartbeat beyond its id and age."""
    return WorkerDetails(
        host=heartbeat.host,
        pid=heartbeat.pid,
        version=heartbeat.version,
        queues=heartbeat.queues,
        concurrency=heartbeat.concurrency,
        in_hand=heartbeat.in_hand,
        running=heartbeat.running,
        started_at=at(heartbeat.started_at_ms),
        last_job_started_at=(
            None
            if heartbeat.last_job_started_at_ms is None
            else at(heartbeat.last_job_started_at_ms)
        ),
        last_job_finished_at=(
            None
            if heartbeat.last_job_finished_at_ms is None
            else at(heartbeat.last_job_finished_at_ms)
        ),
        stopping=heartbeat.stopping,
    )


def _no_worker(heartbeats: Heartbeats, now: int) -> str:
    if not heartbeats.lost:
        return "no worker heartbeat: no worker runs"
    last = max(heartbeats.lost, key=lambda lost: lost.last_beat_at_ms)
    ago_s = max(now - last.last_beat_at_ms, 0) / 1000
    return f"no worker heartbeat: the last one came from {last.id} {ago_s:.1f} s ago"


def worker_findings(heartbeats: Heartbeats, now: int) -> list[Finding]:
    """An entry per live worker, its heartbeat's age in seconds as the observed value.

    A worker is live while its heartbeat has not expired. One that is stopping finishes its jobs
    but takes none: it passes while another worker takes jobs, and fails with the check when
    none does, as does the check without any heartbeat. `now` (Unix ms) ages the lost ones.
    """
    if not heartbeats.live:
        return [Finding(ok=False, output=_no_worker(heartbeats, now))]
    taking = any(not seen.heartbeat.stopping for seen in heartbeats.live)
    return [
        Finding(
            ok=taking,
            component_id=seen.heartbeat.id,
            observed_value=seen.age_ms / 1000,
            observed_unit="s",
            time=at(seen.heartbeat.beat_at_ms),
            output=None if taking else "every live worker is stopping: none takes new jobs",
            worker=details(seen.heartbeat),
        )
        for seen in heartbeats.live
    ]


def worker_heartbeats(redis: Redis, clock: Callable[[], int] = now_ms) -> Probe:
    """Read every heartbeat; the findings of `worker_findings`."""

    async def probe() -> list[Finding]:
        return worker_findings(await read_heartbeats(redis), clock())

    return probe
