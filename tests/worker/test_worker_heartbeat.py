"""The worker's heartbeat loop against a real Redis: what it says, how often, and its removal."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest
from prometheus_client import CollectorRegistry
from redis.asyncio import Redis

from shared.heartbeats import read_heartbeats
from shared.streams import WORKERS_KEY, Lane, worker_heartbeat
from tests.envelopes import job_envelope
from worker.heartbeat import TTL_BEATS, HeartbeatLoop, JobActivity
from worker.settings import WorkerSettings

SETTINGS = WorkerSettings(id="beating-worker", concurrency=5)


class Holding:
    """A runner stand-in holding fixed entries per lane."""

    def __init__(self, held: dict[Lane, list[str]]) -> None:
        self.held = held

    def in_hand(self, lane: Lane) -> list[str]:
        return self.held.get(lane, [])


async def test_a_beat_says_who_the_worker_is_what_it_holds_and_when_it_last_ran_a_job(
    redis: Redis,
) -> None:
    activity = JobActivity(CollectorRegistry(), clock=lambda: 2_000)
    runner = Holding({Lane("default"): ["1-0", "2-0"], Lane("reports", "high"): ["3-0"]})
    loop = HeartbeatLoop(
        redis, runner, activity, SETTINGS, ("default", "reports"), stopping=lambda: False
    )
    first, second = job_envelope(), job_envelope()
    activity.started(first, 1_000)
    activity.started(second, 1_500)
    activity.finished(first, 0.5, ok=True)

    assert await loop.beat()

    [seen] = (await read_heartbeats(redis)).live
    beat = seen.heartbeat
    assert (beat.id, beat.host, beat.pid) == ("beating-worker", socket.gethostname(), os.getpid())
    assert (beat.queues, beat.concurrency, beat.version) == (("default", "reports"), 5, "0.1.0")
    assert (beat.in_hand, beat.running) == (3, 1)
    assert (beat.last_job_started_at_ms, beat.last_job_finished_at_ms) == (1_500, 2_000)
    assert beat.ttl_ms == 2_000 * TTL_BEATS
    assert not beat.stopping


async def test_the_loop_beats_every_interval_says_when_it_stops_and_removes_its_heartbeat(
    redis: Redis,
) -> None:
    stopping = False
    loop = HeartbeatLoop(
        redis,
        Holding({}),
        JobActivity(CollectorRegistry()),
        SETTINGS,
        ("default",),
        stopping=lambda: stopping,
        interval_s=0.05,
    )
    running = asyncio.create_task(loop.run())
    try:
        beats: list[int] = []
        for _ in range(100):
            live = (await read_heartbeats(redis)).live
            if live and live[0].heartbeat.beat_at_ms not in beats:
                beats.append(live[0].heartbeat.beat_at_ms)
            if len(beats) >= 3:
                break
            await asyncio.sleep(0.02)
        assert len(beats) >= 3, "the heartbeat was not renewed every interval"
        stopping = True
        for _ in range(100):
            live = (await read_heartbeats(redis)).live
            if live and live[0].heartbeat.stopping:
                break
            await asyncio.sleep(0.02)
        assert live[0].heartbeat.stopping
    finally:
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    # Cancelled as the worker shuts down: gone at once, not left to expire.
    assert await redis.exists(worker_heartbeat("beating-worker"), WORKERS_KEY) == 0
