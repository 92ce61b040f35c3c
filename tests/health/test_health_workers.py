"""The worker check: live workers from their heartbeats, as pure findings and with real worker
processes that start, run a job, are killed with SIGKILL or stop with SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from litestar import Litestar
from redis.asyncio import Redis

from health.aggregate import Finding, ProbeResult, build_report
from health.app import create_app
from health.settings import HealthSettings
from health.workers import worker_findings
from shared.clock import now_ms
from shared.contracts.jobs import JobEnvelope
from shared.heartbeats import Heartbeat, Heartbeats, LostWorker, SeenHeartbeat
from shared.jobstore import JobStore
from shared.settings import DatabaseSettings, RedisSettings
from shared.streams import worker_heartbeat
from tests.health.conftest import MakeHeartbeat
from tests.worker.conftest import SpawnWorker
from worker.heartbeat import INTERVAL_S, TTL_BEATS

Serve = Callable[[Litestar], AbstractAsyncContextManager[str]]
Document = dict[str, Any]

NOW_MS = 1_800_000_000_000
# A killed worker's heartbeat expires a TTL after its last beat; plus a poll's slack.
EXPIRY_BOUND_S = INTERVAL_S * TTL_BEATS + 3.0


def iso(ms: int) -> str:
    """Unix ms as the document writes times."""
    text: str = msgspec.json.decode(msgspec.json.encode(datetime.fromtimestamp(ms / 1000, UTC)))
    return text


def live(beat: Heartbeat, age_ms: int = 500) -> SeenHeartbeat:
    return SeenHeartbeat(heartbeat=beat, age_ms=age_ms)


def document(findings: list[Finding], *, critical: bool = True) -> Document:
    """The health document of the worker check alone, as JSON."""
    result = ProbeResult(
        name="worker",
        component_type="component",
        critical=critical,
        ok=True,
        latency_ms=1.0,
        observed_at=datetime.fromtimestamp(NOW_MS / 1000, UTC),
        findings=tuple(findings),
    )
    report = build_report([result], version="1", uptime_s=0)
    decoded: Document = msgspec.json.decode(msgspec.json.encode(report))
    return decoded


def test_without_any_heartbeat_the_check_fails_saying_no_worker_runs() -> None:
    doc = document(worker_findings(Heartbeats(live=(), lost=()), NOW_MS))
    assert doc["status"] == "fail"
    [entry] = doc["checks"]["worker"]
    assert entry["output"] == "no worker heartbeat: no worker runs"


def test_without_a_live_heartbeat_the_output_names_the_worker_heard_from_last() -> None:
    lost = (
        LostWorker(id="older", last_beat_at_ms=NOW_MS - 60_000),
        LostWorker(id="newer", last_beat_at_ms=NOW_MS - 7_500),
    )
    doc = document(worker_findings(Heartbeats(live=(), lost=lost), NOW_MS))
    [entry] = doc["checks"]["worker"]
    assert entry["status"] == "fail"
    assert entry["output"] == "no worker heartbeat: the last one came from newer 7.5 s ago"


def test_each_live_worker_is_an_entry_with_its_heartbeat_age_and_figures(
    make_heartbeat: MakeHeartbeat,
) -> None:
    busy = make_heartbeat(
        "busy",
        queues=("default", "reports"),
        in_hand=5,
        running=4,
        started_at_ms=NOW_MS - 60_000,
        beat_at_ms=NOW_MS - 1_250,
        last_job_started_at_ms=NOW_MS - 2_000,
        last_job_finished_at_ms=NOW_MS - 3_000,
    )
    idle = make_heartbeat("idle", beat_at_ms=NOW_MS)
    heartbeats = Heartbeats(
        live=(live(busy, age_ms=1_250), live(idle, age_ms=10)),
        lost=(LostWorker(id="gone", last_beat_at_ms=NOW_MS - 30_000),),
    )
    doc = document(worker_findings(heartbeats, NOW_MS))
    assert doc["status"] == "pass"
    first, second = doc["checks"]["worker"]
    assert first == {
        "status": "pass",
        "componentType": "component",
        "componentId": "busy",
        "observedValue": 1.25,
        "observedUnit": "s",
        "time": iso(NOW_MS - 1_250),
        "worker": {
            "host": "test-host",
            "pid": 4242,
            "version": "0.1.0",
            "queues": ["default", "reports"],
            "concurrency": 4,
            "inHand": 5,
            "running": 4,
            "startedAt": iso(NOW_MS - 60_000),
            "lastJobStartedAt": iso(NOW_MS - 2_000),
            "lastJobFinishedAt": iso(NOW_MS - 3_000),
        },
    }
    assert second["componentId"] == "idle"
    assert "lastJobStartedAt" not in second["worker"]
    # A lost worker is no entry of its own: it dropped out.
    assert [entry["componentId"] for entry in doc["checks"]["worker"]] == ["busy", "idle"]


@given(
    stopping=st.lists(st.booleans(), max_size=6),
    lost=st.integers(min_value=0, max_value=3),
    critical=st.booleans(),
)
def test_the_check_fails_exactly_when_no_live_worker_takes_jobs(
    stopping: list[bool], lost: int, critical: bool
) -> None:
    beats = tuple(
        live(
            Heartbeat(
                id=f"w{index}",
                host="h",
                pid=index,
                version="1",
                queues=("default",),
                concurrency=1,
                in_hand=0,
                running=0,
                started_at_ms=NOW_MS,
                beat_at_ms=NOW_MS,
                ttl_ms=6_000,
                stopping=flag,
            )
        )
        for index, flag in enumerate(stopping)
    )
    gone = tuple(LostWorker(id=f"lost{index}", last_beat_at_ms=NOW_MS) for index in range(lost))
    doc = document(worker_findings(Heartbeats(live=beats, lost=gone), NOW_MS), critical=critical)
    taking = any(not flag for flag in stopping)
    assert doc["status"] == ("pass" if taking else "fail" if critical else "warn")
    if beats:
        assert [entry["componentId"] for entry in doc["checks"]["worker"]] == [
            f"w{index}" for index in range(len(beats))
        ]


# Real worker processes below.


async def enqueue_sleep(store: JobStore, seconds: float) -> None:
    await store.enqueue(
        JobEnvelope(
            id=str(uuid.uuid4()),
            type="demo.sleep",
            queue="default",
            owner="alice",
            max_attempts=1,
            enqueued_at_ms=now_ms(),
            payload=msgspec.Raw(msgspec.json.encode({"seconds": seconds, "steps": 2})),
        )
    )


def health_app(urls: dict[str, str], redis_url: str, database_url: str) -> Litestar:
    return create_app(
        HealthSettings(gateway_url=urls["gateway"], notifier_url=urls["notifier"]),
        RedisSettings(url=redis_url),
        DatabaseSettings(url=database_url),
    )


async def wait_until(
    client: httpx.AsyncClient,
    condition: Callable[[int, Document], bool],
    timeout_s: float,
    what: str,
) -> Document:
    """Poll /health until `condition(status_code, document)`; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        response = await client.get("/health")
        doc: Document = response.json()
        if condition(response.status_code, doc):
            return doc
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s; last: {doc}"
        await asyncio.sleep(0.1)


def workers(doc: Document) -> dict[str, Document]:
    """The live workers' entries, by id."""
    return {
        entry["componentId"]: entry for entry in doc["checks"]["worker"] if "componentId" in entry
    }


@pytest.mark.slow
async def test_a_worker_process_shows_up_with_its_figures_and_its_jobs(
    *,
    serve: Serve,
    spawn_worker: SpawnWorker,
    store: JobStore,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
) -> None:
    process = spawn_worker("alpha", WORKER_CONCURRENCY="3")
    async with (
        serve(health_app(livez_urls, redis_url, database_url)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        doc = await wait_until(
            client, lambda code, doc: "alpha" in workers(doc), 10, "the worker shows up"
        )
        assert doc["status"] == "pass"
        entry = workers(doc)["alpha"]
        assert entry["status"] == "pass"
        assert entry["observedUnit"] == "s"
        assert 0 <= entry["observedValue"] <= INTERVAL_S * TTL_BEATS
        figures = entry["worker"]
        assert (figures["host"], figures["pid"]) == (socket.gethostname(), process.pid)
        assert (figures["queues"], figures["concurrency"]) == (["default"], 3)
        assert (figures["inHand"], figures["running"]) == (0, 0)
        assert "lastJobStartedAt" not in figures

        await enqueue_sleep(store, 3.0)
        doc = await wait_until(
            client,
            lambda code, doc: workers(doc).get("alpha", {}).get("worker", {}).get("running") == 1,
            10,
            "the running job shows in the heartbeat",
        )
        figures = workers(doc)["alpha"]["worker"]
        assert figures["inHand"] == 1
        assert "lastJobStartedAt" in figures
        assert "lastJobFinishedAt" not in figures

        doc = await wait_until(
            client,
            lambda code, doc: (
                "lastJobFinishedAt" in workers(doc).get("alpha", {}).get("worker", {})
            ),
            10,
            "the finished job shows in the heartbeat",
        )
        figures = workers(doc)["alpha"]["worker"]
        assert (figures["inHand"], figures["running"]) == (0, 0)
        assert figures["lastJobFinishedAt"] > figures["lastJobStartedAt"]


@pytest.mark.slow
async def test_a_killed_worker_drops_out_within_its_ttl_and_without_any_the_check_fails(
    *,
    serve: Serve,
    spawn_worker: SpawnWorker,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
) -> None:
    alpha = spawn_worker("alpha")
    beta = spawn_worker("beta")
    async with (
        serve(health_app(livez_urls, redis_url, database_url)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        await wait_until(
            client,
            lambda code, doc: code == 200 and set(workers(doc)) == {"alpha", "beta"},
            10,
            "both workers show up",
        )
        alpha.kill()
        killed_at = time.monotonic()
        doc = await wait_until(
            client,
            lambda code, doc: set(workers(doc)) == {"beta"},
            EXPIRY_BOUND_S,
            "the killed worker drops out",
        )
        # No clean removal: it stayed until its heartbeat expired, some beats after the kill.
        assert time.monotonic() - killed_at >= INTERVAL_S * (TTL_BEATS - 1)
        assert doc["status"] == "pass"

        beta.kill()
        doc = await wait_until(
            client, lambda code, doc: code == 503, EXPIRY_BOUND_S, "the check fails"
        )
        assert doc["status"] == "fail"
        [entry] = doc["checks"]["worker"]
        assert entry["status"] == "fail"
        assert entry["output"].startswith("no worker heartbeat: the last one came from beta")


@pytest.mark.slow
async def test_a_worker_stopped_with_sigterm_removes_its_heartbeat_at_once(
    *,
    serve: Serve,
    spawn_worker: SpawnWorker,
    redis: Redis,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
) -> None:
    process = spawn_worker("leaving")
    async with (
        serve(health_app(livez_urls, redis_url, database_url)) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=10) as client,
    ):
        await wait_until(
            client, lambda code, doc: "leaving" in workers(doc), 10, "the worker shows up"
        )
        process.signal(signal.SIGTERM)
        assert process.wait(timeout_s=15) == 0
        # Gone as the process exits, long before its heartbeat would have expired.
        assert await redis.exists(worker_heartbeat("leaving")) == 0
        response = await client.get("/health")
    assert response.status_code == 503
    [entry] = response.json()["checks"]["worker"]
    assert entry["output"] == "no worker heartbeat: no worker runs"
