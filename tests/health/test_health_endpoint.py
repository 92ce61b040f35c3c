"""`GET /health` against real Redis, PostgreSQL and real HTTP peers, served by uvicorn."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
from litestar import Litestar

from devstack.servers import RedisServer
from health.app import create_app
from health.settings import HealthSettings
from shared.heartbeats import Heartbeat
from shared.settings import DatabaseSettings, RedisSettings

Serve = Callable[[Litestar], AbstractAsyncContextManager[str]]


HEALTH_JSON = "application/health+json"
UNREACHABLE_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:{port}/nothing"


def settings(urls: dict[str, str], timeout_s: float = 2.0, **extra: Any) -> HealthSettings:
    return HealthSettings(
        gateway_url=urls["gateway"],
        notifier_url=urls["notifier"],
        probe_timeout_s=timeout_s,
        **extra,
    )


async def get_health(base_url: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        return await client.get("/health")


def failing(document: dict[str, Any]) -> dict[str, str]:
    """The failing checks, by name, with their output."""
    return {
        name: entry["output"]
        for name, entries in document["checks"].items()
        for entry in entries
        if entry["status"] == "fail"
    }


async def test_health_passes_with_200_when_every_dependency_answers(
    serve: Serve,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
    live_worker: Heartbeat,
) -> None:
    app = create_app(
        settings(livez_urls), RedisSettings(url=redis_url), DatabaseSettings(url=database_url)
    )
    async with serve(app) as base_url:
        response = await get_health(base_url)
    assert response.status_code == 200
    assert response.headers["content-type"] == HEALTH_JSON
    document = response.json()
    assert document["status"] == "pass"
    assert document["uptime_s"] >= 0
    assert document["version"] == "0.1.0"
    assert set(document["checks"]) == {
        "redis",
        "postgres",
        "gateway",
        "notifier",
        "worker",
        "queues:lag",
        "queues:oldestPendingAge",
        "queues:deadLetters",
        "redis:memory",
        "redis:aof",
    }
    for entries in document["checks"].values():
        (entry,) = entries
        assert entry["status"] == "pass"
        assert entry["observedUnit"] in {"ms", "s", "jobs", "bytes"}
        assert entry["observedValue"] >= 0
        assert entry["time"].endswith("Z")
        assert "output" not in entry


async def test_health_fails_naming_redis_while_it_is_stopped_and_passes_once_it_is_back(
    *,
    serve: Serve,
    redis_server: RedisServer,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
    live_worker: Heartbeat,
) -> None:
    app = create_app(
        settings(livez_urls), RedisSettings(url=redis_url), DatabaseSettings(url=database_url)
    )
    async with serve(app) as base_url:
        assert (await get_health(base_url)).status_code == 200
        redis_server.stop()
        try:
            response = await get_health(base_url)
            assert response.status_code == 503
            assert response.headers["content-type"] == HEALTH_JSON
            document = response.json()
            assert document["status"] == "fail"
            # The worker check reads the heartbeats from Redis: it cannot vouch for any worker.
            assert list(failing(document)) == ["redis", "worker"]
            assert "Error" in failing(document)["redis"]
        finally:
            redis_server.start()
        # The pooled connection died with the server; a probe may need one round to replace it.
        deadline = time.monotonic() + 10
        while (response := await get_health(base_url)).status_code != 200:
            assert time.monotonic() < deadline, response.text
            await asyncio.sleep(0.1)
        assert response.json()["status"] == "pass"


async def test_health_fails_naming_a_service_whose_port_is_closed(
    *,
    serve: Serve,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
    closed_port_url: str,
    live_worker: Heartbeat,
) -> None:
    urls = {**livez_urls, "gateway": closed_port_url}
    app = create_app(
        settings(urls), RedisSettings(url=redis_url), DatabaseSettings(url=database_url)
    )
    async with serve(app) as base_url:
        response = await get_health(base_url)
    assert response.status_code == 503
    document = response.json()
    assert document["status"] == "fail"
    assert list(failing(document)) == ["gateway"]
    assert failing(document)["gateway"].startswith("ConnectError")


async def test_health_fails_within_the_timeout_when_a_service_accepts_but_never_answers(
    *,
    serve: Serve,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
    hung_url: str,
    live_worker: Heartbeat,
) -> None:
    urls = {**livez_urls, "gateway": hung_url}
    app = create_app(
        settings(urls, timeout_s=0.5),
        RedisSettings(url=redis_url),
        DatabaseSettings(url=database_url),
    )
    async with serve(app) as base_url:
        started = time.monotonic()
        response = await get_health(base_url)
        elapsed_s = time.monotonic() - started
    assert response.status_code == 503
    assert elapsed_s < 2.0
    document = response.json()
    assert list(failing(document)) == ["gateway"]
    assert document["checks"]["gateway"][0]["observedValue"] >= 500


async def test_health_fails_naming_postgres_when_it_is_unreachable(
    serve: Serve,
    redis_url: str,
    livez_urls: dict[str, str],
    closed_port_url: str,
    live_worker: Heartbeat,
) -> None:
    port = closed_port_url.rsplit(":", 1)[1]
    app = create_app(
        settings(livez_urls),
        RedisSettings(url=redis_url),
        DatabaseSettings(url=UNREACHABLE_POSTGRES.format(port=port)),
    )
    async with serve(app) as base_url:
        response = await get_health(base_url)
    assert response.status_code == 503
    assert list(failing(response.json())) == ["postgres"]


async def test_failing_optional_check_warns_but_still_answers_200(
    *,
    serve: Serve,
    redis_url: str,
    database_url: str,
    livez_urls: dict[str, str],
    closed_port_url: str,
    live_worker: Heartbeat,
) -> None:
    urls = {**livez_urls, "notifier": closed_port_url}
    app = create_app(
        settings(urls, optional_checks=("notifier",)),
        RedisSettings(url=redis_url),
        DatabaseSettings(url=database_url),
    )
    async with serve(app) as base_url:
        response = await get_health(base_url)
    assert response.status_code == 200
    document = response.json()
    assert document["status"] == "warn"
    assert document["checks"]["notifier"][0]["status"] == "warn"
    assert "output" in document["checks"]["notifier"][0]


async def test_livez_readyz_and_metrics_answer_without_any_dependency(
    serve: Serve,
    closed_port_url: str,
) -> None:
    port = closed_port_url.rsplit(":", 1)[1]
    app = create_app(
        settings(dict.fromkeys(("gateway", "notifier", "worker"), closed_port_url)),
        RedisSettings(url=f"redis://127.0.0.1:{port}/0"),
        DatabaseSettings(url=UNREACHABLE_POSTGRES.format(port=port)),
    )
    async with serve(app) as base_url, httpx.AsyncClient(base_url=base_url) as client:
        livez = await client.get("/livez")
        readyz = await client.get("/readyz")
        metrics = await client.get("/metrics")
    assert (livez.status_code, livez.json()) == (200, {"status": "pass"})
    assert (readyz.status_code, readyz.json()) == (200, {"status": "pass"})
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'path="/livez"' in metrics.text
