"""The core job path on a real 3-master Redis Cluster, with two queues on different shards.

The gateway and two workers run as processes with `REDIS_CLUSTER=true`; every Lua script and
consumer-group command then runs on the master of its queue's slot, and any key of another slot
in a script would fail with CROSSSLOT.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import cast

import httpx
import pytest
from redis.cluster import RedisCluster as SyncRedisCluster

from devstack.cluster import RedisCluster
from devstack.services import ServiceProcess, terminate_all
from devstack.tokens import TokenFactory
from shared.contracts.codec import dead_letter_decoder
from shared.streams import DATA_FIELD, WORKER_GROUP, QueueKeys
from tests.deploy.jobs_over_http import JOB_TIMEOUT_S, start_service, submit, wait_for_state

pytestmark = pytest.mark.slow

WORKER_IDS = ("cluster-w1", "cluster-w2")
VISIBILITY_TIMEOUT_S = 2


class Cluster:
    """The running cluster, its two queues and the processes on it."""

    def __init__(
        self, redis: RedisCluster, queues: tuple[str, str], gateway: ServiceProcess
    ) -> None:
        self.redis = redis
        self.queues = queues
        self.gateway = gateway
        self.workers: dict[str, ServiceProcess] = {}


def queues_on_different_masters(cluster: RedisCluster) -> tuple[str, str]:
    """Two queue names whose hash tags' slots are served by different masters."""
    first = "alpha"
    first_master = cluster.master_port_of(QueueKeys(first).stream)
    for index in range(100):
        name = f"shard{index}"
        if cluster.master_port_of(QueueKeys(name).stream) != first_master:
            return first, name
    raise AssertionError("no queue name maps to another master")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, jwt_secret: str) -> Iterator[Cluster]:
    """A 3-master cluster, the gateway and two workers on it, consuming two queues."""
    root = tmp_path_factory.mktemp("cluster")
    redis = RedisCluster(root / "redis", secrets.token_urlsafe(24))
    redis.start()
    queues = queues_on_different_masters(redis)
    processes: list[ServiceProcess] = []
    try:
        gateway = start_service(
            "gateway",
            redis.environment(),
            queues=queues,
            jwt_secret=jwt_secret,
            log_dir=root / "logs",
        )
        processes.append(gateway)
        running = Cluster(redis, queues, gateway)
        for worker_id in WORKER_IDS:
            worker = start_service(
                "worker",
                redis.environment(),
                queues=queues,
                jwt_secret=jwt_secret,
                log_dir=root / "logs",
                extra={
                    "WORKER_ID": worker_id,
                    "WORKER_VISIBILITY_TIMEOUT_S": str(VISIBILITY_TIMEOUT_S),
                    "WORKER_RECLAIM_INTERVAL_S": "0.5",
                    "WORKER_GRACE_S": "2",
                },
            )
            processes.append(worker)
            running.workers[worker_id] = worker
        for process in processes:
            process.wait_ready(60.0)
        yield running
    finally:
        terminate_all(processes)
        redis.stop()


def test_two_queues_live_on_different_masters(cluster: Cluster) -> None:
    first, second = (QueueKeys(queue) for queue in cluster.queues)
    assert cluster.redis.master_port_of(first.stream) != cluster.redis.master_port_of(second.stream)
    # Every key of a queue is on its stream's master: the scripts touch one slot.
    for keys in (first, second):
        master = cluster.redis.master_port_of(keys.stream)
        for key in (keys.delayed, keys.dead, keys.events, keys.job("x"), keys.stream_of("high")):
            assert cluster.redis.master_port_of(key) == master


def test_jobs_on_both_shards_complete(cluster: Cluster, make_token: TokenFactory) -> None:
    token = make_token("cluster-alice")
    submitted = {
        queue: submit(
            cluster,
            token,
            {"type": "demo.echo", "payload": {"text": f"on {queue}"}, "queue": queue},
        )
        for queue in cluster.queues
    }
    for queue, job_id in submitted.items():
        # The gateway finds the job among both queues' keys, on both masters.
        job = wait_for_state(cluster, token, job_id, "completed")
        assert job["queue"] == queue
        assert job["result"] == {"text": f"on {queue}"}


def test_failed_attempt_is_retried_then_completes(
    cluster: Cluster, make_token: TokenFactory
) -> None:
    token = make_token("cluster-bob")
    for queue in cluster.queues:
        job_id = submit(
            cluster,
            token,
            {"type": "demo.fail", "payload": {"times": 1, "message": "boom"}, "queue": queue},
        )
        job = wait_for_state(cluster, token, job_id, "completed")
        assert job["attempt"] == 2
        assert len(job["errors"]) == 1


def test_exhausted_job_lands_in_its_queues_dead_letter_stream(
    cluster: Cluster, make_token: TokenFactory
) -> None:
    token = make_token("cluster-carol")
    queue = cluster.queues[1]
    job_id = submit(
        cluster,
        token,
        {
            "type": "demo.fail",
            "payload": {"times": 5, "message": "always"},
            "queue": queue,
            "max_attempts": 2,
        },
    )
    job = wait_for_state(cluster, token, job_id, "dead")
    assert len(job["errors"]) == 2
    client: SyncRedisCluster = cluster.redis.client()
    try:
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(QueueKeys(queue).dead))
    finally:
        client.close()
    letters = [dead_letter_decoder.decode(fields[DATA_FIELD.encode()]) for _, fields in entries]
    (letter,) = [letter for letter in letters if letter.job and letter.job.id == job_id]
    assert len(letter.errors) == 2


def test_waiting_job_is_cancelled_and_an_undecodable_entry_dead_lettered(
    cluster: Cluster, make_token: TokenFactory
) -> None:
    token = make_token("cluster-erin")
    queue = cluster.queues[1]
    job_id = submit(
        cluster,
        token,
        {"type": "demo.echo", "payload": {"text": "later"}, "queue": queue, "delay_s": 60},
    )
    wait_for_state(cluster, token, job_id, "delayed")
    answer = httpx.post(
        f"{cluster.gateway.base_url}/v1/jobs/{job_id}/cancel",
        headers={"Authorization": f"Bearer {token}"},
        timeout=5.0,
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "cancelled"
    keys = QueueKeys(queue)
    client: SyncRedisCluster = cluster.redis.client()
    try:
        added = client.xadd(keys.stream, {DATA_FIELD: b"not a job"})
        entry_id = added.decode() if isinstance(added, bytes) else added
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while time.monotonic() < deadline:
            raw = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(keys.dead))
            letters = [dead_letter_decoder.decode(fields[DATA_FIELD.encode()]) for _, fields in raw]
            if any(letter.source_entry == entry_id for letter in letters):
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"entry {entry_id} was not dead-lettered")
        assert client.xpending_range(keys.stream, WORKER_GROUP, "-", "+", 10) == []
    finally:
        client.close()


def test_job_of_a_killed_worker_is_reclaimed_and_completed_by_the_other(
    cluster: Cluster, make_token: TokenFactory
) -> None:
    token = make_token("cluster-dave")
    queue = cluster.queues[0]
    job_id = submit(
        cluster,
        token,
        {"type": "demo.sleep", "payload": {"seconds": 2.0, "steps": 4}, "queue": queue},
    )
    wait_for_state(cluster, token, job_id, "active")
    client: SyncRedisCluster = cluster.redis.client()
    try:
        (held,) = client.xpending_range(QueueKeys(queue).stream, WORKER_GROUP, "-", "+", 10)
        consumer = held["consumer"]
        assert isinstance(consumer, bytes)
        holder = consumer.decode()
        cluster.workers[holder].kill()
        job = wait_for_state(cluster, token, job_id, "completed")
        assert job["result"] == {"slept_s": 2.0}
        # The entry was finished (acked and deleted) by the survivor, not left pending.
        assert client.xpending_range(QueueKeys(queue).stream, WORKER_GROUP, "-", "+", 10) == []
    finally:
        client.close()
    (survivor,) = set(WORKER_IDS) - {holder}
    assert cluster.workers[survivor].is_running
