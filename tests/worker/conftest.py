"""Worker processes for chaos tests: real `python -m worker` processes on the test's Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.ports import free_port
from devstack.services import SERVICES, ServiceProcess, service_environment

WORKER = next(spec for spec in SERVICES if spec.name == "worker")

SpawnWorker = Callable[..., ServiceProcess]


@pytest.fixture
def spawn_worker(redis_url: str, tmp_path: Path) -> Iterator[SpawnWorker]:
    """spawn_worker(name, **WORKER_SETTINGS): a live worker process; all are killed afterwards.

    Leases lapse after 2 s and reclaimers look every 0.25 s, so crash tests run in seconds.
    """
    started: list[ServiceProcess] = []

    def spawn(name: str, **settings: str) -> ServiceProcess:
        port = free_port()
        env = service_environment(
            WORKER,
            {"worker": port},
            redis_url=redis_url,
            database_url="postgresql+asyncpg://unused@127.0.0.1:1/unused",
            jwt_secret="unused-by-the-worker-" + "x" * 16,
        )
        # No PostgreSQL unless a test gives one (DATABASE_URL=...): then runtime settings apply.
        del env["DATABASE_URL"]
        env |= {
            "WORKER_ID": name,
            "WORKER_VISIBILITY_TIMEOUT_S": "2",
            "WORKER_RECLAIM_INTERVAL_S": "0.25",
            **settings,
        }
        process = ServiceProcess(WORKER, port, env, log_path=tmp_path / f"{name}.log")
        process.start()
        started.append(process)
        process.wait_ready()
        return process

    yield spawn
    for process in started:
        if process.is_running:
            process.kill()
