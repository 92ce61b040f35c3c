"""The notifier and the health service on a real 3-master Redis Cluster, queues on two shards.

The gateway, a worker, the notifier and the health service run as processes with
`REDIS_CLUSTER=true`. The notifier cannot read both queues' events streams in one XREAD there
(their keys are in different slots), so it reads them per slot; a WebSocket client must still
get every event of jobs on both shards, in order per queue, catch up with `?since=`, and have
its notifications stored once. The health service must ping and gauge both shards.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devstack.cluster import RedisCluster
from devstack.ports import free_port
from devstack.servers import PostgresServer
from devstack.services import SERVICES, ServiceProcess, service_environment, terminate_all
from devstack.tokens import TokenFactory
from health.app import create_app as create_health_app
from health.settings import HealthSettings
from notifier.app import create_app as create_notifier_app
from notifier.settings import NotifierSettings
from shared.client import NotifierClient, connect
from shared.connections import redis_client
from shared.contracts.events import JobCompleted
from shared.contracts.ws import EventPush, Resync, ServerMessage, Welcome, parse_offset
from shared.runtime.listener import SettingsListener
from shared.settings import DatabaseSettings, JwtSettings, QueueSettings, RedisSettings
from shared.streams import QueueKeys, entry_order
from tests.deploy.test_redis_cluster import queues_on_different_masters
from tests.serving import serving

pytestmark = pytest.mark.slow

SPECS = {spec.name: spec for spec in SERVICES}
WAIT_S = 20.0


@dataclass
class ClusterStack:
    """The cluster, its two queues (on different masters) and the services on it."""

    redis: RedisCluster
    queues: tuple[str, str]
    services: dict[str, ServiceProcess]

    def url(self, name: str) -> str:
        """Base URL of one service."""
        return self.services[name].base_url

    @property
    def ws_url(self) -> str:
        """The notifier's WebSocket endpoint, without a query."""
        return self.url("notifier").replace("http://", "ws://", 1) + "/ws"


@pytest.fixture(scope="module")
def cluster_stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    template_database: str,
    jwt_secret: str,
) -> Iterator[ClusterStack]:
    """A 3-master cluster and every service on it, with a migrated database of their own."""
    root = tmp_path_factory.mktemp("cluster-notifier")
    redis = RedisCluster(root / "redis", secrets.token_urlsafe(24))
    redis.start()
    database = f"cluster_notifier_{secrets.token_hex(4)}"
    database_url = postgres_server.create_database(database, template=template_database)
    queues = queues_on_different_masters(redis)
    ports = {spec.name: free_port() for spec in SERVICES}
    extra = {
        # Short blocking reads, so that the notifier stops promptly.
        "notifier": {"NOTIFIER_READ_BLOCK_MS": "1000"},
        "health": {"HEALTH_QUEUE_POLL_S": "0.2"},
        "worker": {"WORKER_ID": "cluster-notifier-w1", "WORKER_GRACE_S": "2"},
    }
    processes: dict[str, ServiceProcess] = {}
    try:
        for spec in SERVICES:
            env = service_environment(
                spec,
                ports,
                redis_url=redis.url,
                database_url=database_url,
                jwt_secret=jwt_secret,
                queue_names=",".join(queues),
            )
            env |= {"REDIS_CLUSTER": "true", **extra.get(spec.name, {})}
            process = ServiceProcess(
                spec, ports[spec.name], env, log_path=root / "logs" / f"{spec.name}.log"
            )
            process.start()
            processes[spec.name] = process
        for process in processes.values():
            process.wait_ready(60.0)
        yield ClusterStack(redis=redis, queues=queues, services=processes)
    finally:
        terminate_all(processes.values())
        redis.stop()
        postgres_server.drop_database(database)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for the services."""
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


async def submit(
    http: httpx.AsyncClient, stack: ClusterStack, token: str, queue: str, **job: Any
) -> str:
    """POST a demo.echo job (or `job`) to `queue` through the gateway; its id."""
    body = {"type": "demo.echo", "payload": {"text": f"on {queue}"}, "queue": queue, **job}
    answer = await http.post(
        f"{stack.url('gateway')}/v1/jobs",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert answer.status_code == 202, answer.text
    job_id: str = answer.json()["id"]
    return job_id


async def wait_completed(
    http: httpx.AsyncClient, stack: ClusterStack, token: str, job_id: str
) -> None:
    """Poll the gateway until the job is completed."""
    async with asyncio.timeout(WAIT_S):
        while True:
            answer = await http.get(
                f"{stack.url('gateway')}/v1/jobs/{job_id}",
                headers={"Authorization": f"Bearer {token}"},
            )
            if answer.json().get("state") == "completed":
                return
            await asyncio.sleep(0.05)


async def welcome(client: NotifierClient) -> Welcome:
    """The first message of a new connection."""
    async with asyncio.timeout(WAIT_S):
        message = await anext(aiter(client))
    assert isinstance(message, Welcome), message
    return message


async def events_until_completed(
    client: NotifierClient, job_ids: set[str]
) -> tuple[list[EventPush], list[ServerMessage]]:
    """The pushes of `job_ids` until each has completed, and every other message meanwhile."""
    pushes: list[EventPush] = []
    others: list[ServerMessage] = []
    waiting = set(job_ids)
    async with asyncio.timeout(WAIT_S):
        async for message in client:
            if not isinstance(message, EventPush):
                others.append(message)
                continue
            if message.event.job_id not in job_ids:
                continue
            pushes.append(message)
            if isinstance(message.event, JobCompleted):
                waiting.discard(message.event.job_id)
                if not waiting:
                    break
    return pushes, others


def assert_in_order_per_queue(pushes: list[EventPush]) -> None:
    """Each push's offset names its event's queue, and offsets grow within each queue."""
    last: dict[str, tuple[int, int]] = {}
    for push in pushes:
        queue, entry_id = parse_offset(push.offset)
        assert queue == push.event.queue
        assert entry_order(entry_id) > last.get(queue, (0, -1)), pushes
        last[queue] = entry_order(entry_id)


def kinds_of(pushes: list[EventPush], job_id: str) -> list[str]:
    """The event types pushed for one job, in the order received."""
    return [
        str(type(push.event).__struct_config__.tag)
        for push in pushes
        if push.event.job_id == job_id
    ]


def test_the_queues_events_streams_are_on_different_masters(cluster_stack: ClusterStack) -> None:
    first, second = (QueueKeys(queue).events for queue in cluster_stack.queues)
    assert cluster_stack.redis.master_port_of(first) != cluster_stack.redis.master_port_of(second)


async def test_a_client_receives_the_events_of_jobs_on_both_shards_in_order(
    cluster_stack: ClusterStack, http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = make_token("cluster-nina")
    assert (await http.get(f"{cluster_stack.url('notifier')}/readyz")).status_code == 200
    async with connect(cluster_stack.ws_url, token, reconnect=False) as client:
        await welcome(client)
        jobs = {
            queue: await submit(http, cluster_stack, token, queue) for queue in cluster_stack.queues
        }
        pushes, _ = await events_until_completed(client, set(jobs.values()))
    assert_in_order_per_queue(pushes)
    for queue, job_id in jobs.items():
        assert kinds_of(pushes, job_id) == ["job.queued", "job.started", "job.completed"]
        assert {push.event.queue for push in pushes if push.event.job_id == job_id} == {queue}
    assert not any(push.recovered for push in pushes)
    # The client now knows an offset in each queue: both shards' streams were read.
    assert set(client.offsets) == set(cluster_stack.queues)


async def test_a_client_catches_up_with_since_on_both_shards(
    cluster_stack: ClusterStack, http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = make_token("cluster-omar")
    async with connect(cluster_stack.ws_url, token, reconnect=False) as client:
        await welcome(client)
        seen = {
            queue: await submit(http, cluster_stack, token, queue) for queue in cluster_stack.queues
        }
        await events_until_completed(client, set(seen.values()))
        since = dict(client.offsets)
    missed = {
        queue: await submit(http, cluster_stack, token, queue) for queue in cluster_stack.queues
    }
    for job_id in missed.values():
        await wait_completed(http, cluster_stack, token, job_id)

    async with connect(cluster_stack.ws_url, token, since=since, reconnect=False) as client:
        await welcome(client)
        pushes, others = await events_until_completed(client, set(missed.values()))

    assert not [message for message in others if isinstance(message, Resync)]
    assert all(push.recovered for push in pushes)
    assert_in_order_per_queue(pushes)
    for queue, job_id in missed.items():
        assert kinds_of(pushes, job_id) == ["job.queued", "job.started", "job.completed"]
        first = next(push for push in pushes if push.event.job_id == job_id)
        assert entry_order(parse_offset(first.offset)[1]) > entry_order(since[queue])


async def test_an_offset_ahead_of_a_shards_stream_is_told_to_resync(
    cluster_stack: ClusterStack, make_token: TokenFactory
) -> None:
    token = make_token("cluster-pia")
    _, second = cluster_stack.queues
    ahead = {second: "99999999999999-0"}
    async with connect(cluster_stack.ws_url, token, since=ahead, reconnect=False) as client:
        await welcome(client)
        async with asyncio.timeout(WAIT_S):
            message = await anext(aiter(client))
    assert isinstance(message, Resync), message
    assert message.queue == second
    assert "reset" in message.reason


async def test_notifications_of_jobs_on_both_shards_are_stored_once(
    cluster_stack: ClusterStack, http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = make_token("cluster-quinn")
    jobs = {
        queue: await submit(http, cluster_stack, token, queue) for queue in cluster_stack.queues
    }
    for job_id in jobs.values():
        await wait_completed(http, cluster_stack, token, job_id)
    items: list[dict[str, Any]] = []
    async with asyncio.timeout(WAIT_S):
        while len(items) < len(jobs):
            answer = await http.get(
                f"{cluster_stack.url('gateway')}/v1/notifications",
                headers={"Authorization": f"Bearer {token}"},
            )
            assert answer.status_code == 200, answer.text
            items = answer.json()["items"]
            await asyncio.sleep(0.1)
    # A moment more: a second copy of either would show up by now.
    await asyncio.sleep(0.5)
    answer = await http.get(
        f"{cluster_stack.url('gateway')}/v1/notifications",
        headers={"Authorization": f"Bearer {token}"},
    )
    stored = {(item["data"]["queue"], item["data"]["job_id"]) for item in answer.json()["items"]}
    assert len(answer.json()["items"]) == len(jobs)
    assert stored == set(jobs.items())


async def test_health_gauges_the_queues_of_both_shards(
    cluster_stack: ClusterStack, http: httpx.AsyncClient, make_token: TokenFactory
) -> None:
    token = make_token("cluster-rosa")
    first, second = cluster_stack.queues
    await submit(http, cluster_stack, token, second, delay_s=600)
    document = (await http.get(f"{cluster_stack.url('health')}/health")).json()
    assert [entry["status"] for entry in document["checks"]["redis"]] == ["pass"]
    async with asyncio.timeout(WAIT_S):
        while True:
            delayed = await delayed_gauges(http, cluster_stack.url("health"))
            if delayed.get(second, 0) >= 1:
                break
            await asyncio.sleep(0.1)
    # The other shard is read as well: its queue has its gauge.
    assert first in delayed


async def delayed_gauges(http: httpx.AsyncClient, base_url: str) -> dict[str, float]:
    """`conduit_queue_delayed` of each queue, from the health service's `/metrics`."""
    text = (await http.get(f"{base_url}/metrics")).text
    return {
        sample.labels["queue"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "conduit_queue_delayed"
        for sample in family.samples
    }


@pytest.fixture
def small_cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    """A 3-master cluster of the test's own, which it may take a master of."""
    cluster = RedisCluster(tmp_path / "redis", secrets.token_urlsafe(24))
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def test_health_fails_redis_when_one_master_of_the_cluster_is_down(
    small_cluster: RedisCluster, database_url: str
) -> None:
    app = create_health_app(
        HealthSettings(probe_timeout_s=1.0, queue_poll_s=60),
        RedisSettings(url=small_cluster.url, cluster=True),
        DatabaseSettings(url=database_url),
        QueueSettings(names=("alpha",)),
    )

    async def redis_statuses(http: httpx.AsyncClient) -> list[str]:
        document = (await http.get("/health")).json()
        return [entry["status"] for entry in document["checks"]["redis"]]

    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        assert await redis_statuses(http) == ["pass"]
        # Not the node the client was given: a ping of that node alone would still pass.
        small_cluster.nodes[-1].stop()
        assert await redis_statuses(http) == ["fail"]


async def test_the_notifier_is_unready_503_while_no_master_of_the_cluster_answers(
    small_cluster: RedisCluster, jwt_secret: str
) -> None:
    app = create_notifier_app(
        redis=RedisSettings(url=small_cluster.url, cluster=True),
        jwt=JwtSettings(secret=jwt_secret),
        queues=QueueSettings(names=("alpha",)),
        notifier=NotifierSettings(read_block_ms=500, retry_min_ms=50, retry_max_ms=200),
        database=None,
    )

    async with serving(app) as base_url, httpx.AsyncClient(base_url=base_url) as http:
        async with asyncio.timeout(10):
            while (await http.get("/readyz")).status_code != 200:  # noqa: ASYNC110 - polls HTTP
                await asyncio.sleep(0.1)
        for node in small_cluster.nodes:
            node.stop()
        unready = await http.get("/readyz")

    # A cluster client raises RedisClusterException, no RedisError, and while it reconnects even
    # an AttributeError: once either was a 500.
    assert unready.status_code == 503
    assert unready.json()["status"] == "fail"


class NoStoredSettings:
    """A settings source with nothing stored: the listener's Redis side is what is tested."""

    async def stored_values(self) -> dict[str, Any]:
        """No row."""
        return {}


async def test_runtime_settings_are_followed_through_a_fresh_cluster_client(
    small_cluster: RedisCluster,
) -> None:
    # The health service's listener has a client of its own that nothing else uses first.
    client = redis_client(RedisSettings(url=small_cluster.url, cluster=True))
    listener = SettingsListener(client, NoStoredSettings(), retry_max_s=0.2)
    try:
        async with listener.running(), asyncio.timeout(10):
            await listener.wait_following()
            assert listener.following
    finally:
        await client.aclose()
