"""The Redis clients every service builds, on a real Sentinel set: pooled, and following a failover.

Runs in this process against a master, a replica and three sentinels; the job path across a
failover, with the services as processes, is tests/deploy/test_redis_sentinel.py.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from devstack.ports import LOOPBACK
from devstack.sentinel import RedisSentinel
from health.aggregate import Finding
from health.probes import redis_ping
from shared.connections import redis_client, sentinel_client
from shared.settings import RedisSettings, from_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sentinel_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinel]:
    """A master, its replica and three sentinels, with passwords of their own."""
    redis = RedisSentinel(
        tmp_path_factory.mktemp("sentinel-clients"),
        secrets.token_urlsafe(24),
        secrets.token_urlsafe(24),
    )
    with redis:
        yield redis


@pytest.fixture
def settings(sentinel_set: RedisSentinel) -> RedisSettings:
    """The settings a service reads when pointed at the set, with a pool of two connections."""
    return from_env(RedisSettings, {**sentinel_set.environment(), "REDIS_MAX_CONNECTIONS": "2"})


@pytest.fixture
async def client(settings: RedisSettings) -> AsyncIterator[Redis]:
    """The client the gateway and the worker build."""
    redis = redis_client(settings)
    yield redis
    await redis.aclose()


async def test_commands_beyond_the_pool_size_wait_for_a_connection(client: Redis) -> None:
    # Five blocking reads on a pool of two: the last three wait, where redis-py's own sentinel
    # pool would fail them at once with "Too many connections".
    reads = [client.blpop([f"nothing-{n}"], timeout=0.2) for n in range(5)]
    assert await asyncio.gather(*reads) == [None] * 5


async def test_the_clients_follow_the_master_sentinel_names_after_a_failover(
    sentinel_set: RedisSentinel, settings: RedisSettings, client: Redis
) -> None:
    # As the health service builds its client: no retries, so a probe shows what it sees now.
    probed = sentinel_client(settings, socket_timeout=1.0, retry=Retry(NoBackoff(), 0))
    probe = redis_ping(probed)
    try:
        old_port = sentinel_set.master_port()
        await client.set("before-failover", "kept")
        assert await probe() == [master_finding(old_port)]
        sentinel_set.await_replicated()

        sentinel_set.server_on(old_port).kill()
        new_port = sentinel_set.await_failover(old_port)

        assert new_port != old_port
        # The first command on a connection to the dead master is retried on the new one.
        assert await client.get("before-failover") == b"kept"
        assert await client.set("after-failover", "written")
        assert await probe() == [master_finding(new_port)]
    finally:
        await probed.aclose()


def master_finding(port: int) -> Finding:
    """What the health service's redis check reports of the master on `port`."""
    return Finding(ok=True, component_id=f"{LOOPBACK}:{port}", output="master named by Sentinel")
