"""The core job path on Redis Sentinel, across a real failover: the master is killed mid-run.

A master, its replica and three sentinels run from redis-server; the gateway, a worker and the
notifier run as processes with `REDIS_SENTINELS`. Jobs finish before the failover, one is
running when the master gets SIGKILL, more are submitted once Sentinel has promoted the
replica: every one of them must end completed (or dead, the one meant to), read back from the
new master, and the notifier must push the events it reads there.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from devstack.sentinel import RedisSentinel
from devstack.services import ServiceProcess, terminate_all
from devstack.tokens import TokenFactory
from shared.client import connect
from shared.contracts.events import JobCompleted
from shared.contracts.ws import EventPush, Welcome
from tests.deploy.jobs_over_http import JOB_TIMEOUT_S, start_service, submit, wait_for_state

pytestmark = pytest.mark.slow

QUEUES = ("default",)
WORKER_ID = "sentinel-w1"


@dataclass
class SentinelStack:
    """The sentinel-watched Redis set and the processes on it."""

    redis: RedisSentinel
    gateway: ServiceProcess
    notifier: ServiceProcess
    workers: dict[str, ServiceProcess] = field(default_factory=dict)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, jwt_secret: str) -> Iterator[SentinelStack]:
    """Master, replica, three sentinels; the gateway and a worker reaching Redis through them."""
    root = tmp_path_factory.mktemp("sentinel")
    redis = RedisSentinel(root / "redis", secrets.token_urlsafe(24), secrets.token_urlsafe(24))
    redis.start()
    processes: list[ServiceProcess] = []
    try:
        log_dir = root / "logs"
        gateway = start_service(
            "gateway", redis.environment(), queues=QUEUES, jwt_secret=jwt_secret, log_dir=log_dir
        )
        processes.append(gateway)
        notifier = start_service(
            "notifier",
            redis.environment(),
            queues=QUEUES,
            jwt_secret=jwt_secret,
            log_dir=log_dir,
            # Short blocking reads, so that it stops promptly.
            extra={"NOTIFIER_READ_BLOCK_MS": "1000"},
        )
        processes.append(notifier)
        worker = start_service(
            "worker",
            redis.environment(),
            queues=QUEUES,
            jwt_secret=jwt_secret,
            log_dir=log_dir,
            extra={
                "WORKER_ID": WORKER_ID,
                # A job whose completion was lost with the master runs again within seconds.
                "WORKER_VISIBILITY_TIMEOUT_S": "2",
                "WORKER_RECLAIM_INTERVAL_S": "0.5",
                "WORKER_GRACE_S": "2",
            },
        )
        processes.append(worker)
        for process in processes:
            process.wait_ready(60.0)
        yield SentinelStack(
            redis=redis, gateway=gateway, notifier=notifier, workers={WORKER_ID: worker}
        )
    finally:
        terminate_all(processes)
        redis.stop()


def echo(text: str) -> dict[str, Any]:
    """A job that completes at once with its text."""
    return {"type": "demo.echo", "payload": {"text": text}}


def test_jobs_before_during_and_after_a_failover_all_finish(
    stack: SentinelStack, make_token: TokenFactory
) -> None:
    token = make_token("sentinel-alice")
    before = {submit(stack, token, echo(f"before {n}")): f"before {n}" for n in range(3)}
    retried = submit(
        stack, token, {"type": "demo.fail", "payload": {"times": 1, "message": "once"}}
    )
    dead = submit(
        stack,
        token,
        {"type": "demo.fail", "payload": {"times": 5, "message": "always"}, "max_attempts": 2},
    )
    for job_id in [*before, retried]:
        wait_for_state(stack, token, job_id, "completed")
    wait_for_state(stack, token, dead, "dead")
    # Running while its master dies: its outcome is written to whichever master is up then.
    in_flight = submit(
        stack, token, {"type": "demo.sleep", "payload": {"seconds": 2.0, "steps": 4}}
    )
    wait_for_state(stack, token, in_flight, "active")
    # Replication is asynchronous: only what the replica has applied survives the failover.
    stack.redis.await_replicated()

    old_port = stack.redis.master_port()
    stack.redis.server_on(old_port).kill()
    new_port = stack.redis.await_failover(old_port)

    # Every sentinel names the former replica now, and it takes writes as a master.
    (replica,) = [server for server in stack.redis.servers if server.port != old_port]
    assert new_port == replica.port
    after = {submit(stack, token, echo(f"after {n}")): f"after {n}" for n in range(3)}
    retried_after = submit(
        stack, token, {"type": "demo.fail", "payload": {"times": 1, "message": "once more"}}
    )
    for job_id, text in {**before, **after}.items():
        job = wait_for_state(stack, token, job_id, "completed")
        assert job["result"] == {"text": text}
    for job_id in (retried, retried_after):
        job = wait_for_state(stack, token, job_id, "completed")
        assert job["attempt"] == 2
        assert len(job["errors"]) == 1
    assert wait_for_state(stack, token, in_flight, "completed")["result"] == {"slept_s": 2.0}
    assert len(wait_for_state(stack, token, dead, "dead")["errors"]) == 2
    assert asyncio.run(completion_pushed(stack, token)) == {"text": "pushed"}
    # No process had to be restarted to follow the new master.
    assert stack.gateway.is_running
    assert stack.notifier.is_running
    assert stack.workers[WORKER_ID].is_running


async def completion_pushed(stack: SentinelStack, token: str) -> Any:
    """Submit a job while connected to the notifier; the result its completion push carries."""
    url = stack.notifier.base_url.replace("http://", "ws://", 1) + "/ws"
    async with (
        connect(url, token, reconnect=False) as client,
        httpx.AsyncClient(timeout=5.0) as http,
        asyncio.timeout(JOB_TIMEOUT_S),
    ):
        assert isinstance(await anext(aiter(client)), Welcome)
        answer = await http.post(
            f"{stack.gateway.base_url}/v1/jobs",
            json=echo("pushed"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        async for message in client:
            if (
                isinstance(message, EventPush)
                and isinstance(message.event, JobCompleted)
                and message.event.job_id == job_id
            ):
                return message.event.result
    pytest.fail(f"the notifier closed before pushing the completion of {job_id}")
