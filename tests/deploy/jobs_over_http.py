"""Services started as processes on a Redis set-up of a test's own, and jobs driven over HTTP.

What the tests on a Redis Cluster and on Redis Sentinel share: each starts the gateway and
workers with its own REDIS_* variables, submits jobs to the gateway and waits for their state.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import httpx
import pytest

from devstack.ports import free_port
from devstack.services import SERVICES, ServiceProcess, service_environment
from shared.settings import DatabaseSettings

SPECS = {spec.name: spec for spec in SERVICES}
JOB_TIMEOUT_S = 20.0


class JobsStack(Protocol):
    """A running gateway, and the workers whose logs explain a job that did not finish."""

    @property
    def gateway(self) -> ServiceProcess:
        """The gateway the jobs are submitted to."""

    @property
    def workers(self) -> Mapping[str, ServiceProcess]:
        """The workers, by id."""


def start_service(
    name: str,
    redis_env: Mapping[str, str],
    *,
    queues: tuple[str, ...],
    jwt_secret: str,
    log_dir: Path,
    extra: Mapping[str, str] | None = None,
) -> ServiceProcess:
    """Launch one service on the REDIS_* variables of `redis_env` (without waiting for it)."""
    port = free_port()
    env = service_environment(
        SPECS[name],
        {name: port},
        redis_url=redis_env["REDIS_URL"],
        # Neither the gateway nor the worker reads PostgreSQL; the default stays unused.
        database_url=DatabaseSettings().url,
        jwt_secret=jwt_secret,
        queue_names=",".join(queues),
    )
    env |= redis_env
    env |= extra or {}
    log_name = env.get("WORKER_ID", name) if name == "worker" else name
    process = ServiceProcess(SPECS[name], port, env, log_path=log_dir / f"{log_name}.log")
    process.start()
    return process


def submit(stack: JobsStack, token: str, job: dict[str, Any]) -> str:
    """POST a job to the gateway; its id."""
    answer = httpx.post(
        f"{stack.gateway.base_url}/v1/jobs",
        json=job,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5.0,
    )
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


def wait_for_state(stack: JobsStack, token: str, job_id: str, state: str) -> dict[str, Any]:
    """GET the job until it is in `state`; fail with its last view and the logs otherwise."""
    deadline = time.monotonic() + JOB_TIMEOUT_S
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        answer = httpx.get(
            f"{stack.gateway.base_url}/v1/jobs/{job_id}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=5.0,
        )
        body = answer.json()
        if body.get("state") == state:
            return body
        time.sleep(0.05)
    logs = "\n".join(worker.log_tail(20) for worker in stack.workers.values())
    pytest.fail(f"job {job_id} not {state} within {JOB_TIMEOUT_S}s: {body}\n{logs}")
