"""Redis clients built one way for every service, so that all of them survive a Redis restart."""

from __future__ import annotations

from typing import cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.settings import RedisSettings

# Without an explicit list, redis-py (7.1 to 8.1, measured) gives up on the first command after a
# server restart: every retry reuses the dead socket and fails with "Connection closed by server".
RETRY_ON = [RedisConnectionError, RedisTimeoutError]

# What a Redis call raises when Redis fails, which a loop waits out and a request answers 503 to.
# A cluster client raises RedisClusterException, which is no RedisError, while no node answers.
REDIS_FAILURES = (RedisError, RedisClusterException, OSError)


def redis_client(settings: RedisSettings) -> Redis:
    """A client that reconnects and retries a command when the connection was lost.

    With `settings.cluster` it is a `RedisCluster`, which routes each command to the master of
    its keys' slot. It is typed as `Redis` because it answers every command Conduit sends the
    same way: each command and script touches the keys of one queue, hence one slot, and the
    pipelines that span queues are the cluster's own, which split them by node.
    """
    if settings.cluster:
        return cast(Redis, RedisCluster.from_url(settings.url, retry_on_error=list(RETRY_ON)))
    # A burst of requests waits for a free connection rather than failing with "Too many
    # connections"; only a wait longer than `pool_timeout_s` is an error.
    pool = BlockingConnectionPool.from_url(
        settings.url,
        max_connections=settings.max_connections,
        timeout=settings.pool_timeout_s,
        retry_on_error=list(RETRY_ON),
    )
    return Redis.from_pool(pool)
