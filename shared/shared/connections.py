"""Redis clients built one way for every service, so that all of them survive a Redis restart."""

from __future__ import annotations

from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
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

    With `settings.sentinels` it is a client of the master Sentinel names (`sentinel_client`).
    """
    if settings.cluster:
        return cast(Redis, RedisCluster.from_url(settings.url, retry_on_error=list(RETRY_ON)))
    # A burst of requests waits for a free connection rather than failing with "Too many
    # connections"; only a wait longer than `pool_timeout_s` is an error.
    options: dict[str, Any] = {
        "max_connections": settings.max_connections,
        "timeout": settings.pool_timeout_s,
        "retry_on_error": list(RETRY_ON),
    }
    if settings.sentinels:
        return sentinel_client(settings, **options)
    return Redis.from_pool(BlockingConnectionPool.from_url(settings.url, **options))


class MasterFollowingConnection(SentinelManagedConnection):
    """A connection that asks Sentinel where the master is each time it (re)connects.

    redis-py 8.1 asks only when the pool hands out a connection: a command retried after its
    connection broke reconnects to the address it had, so every retry during a failover goes to
    the dead master (redis/redis-py#3874, open). Asking here too costs a connection the pool
    opens a second round trip to a sentinel, once: pooled connections live long.
    """

    async def connect_check_health(
        self, check_health: bool = True, retry_socket_connect: bool = True
    ) -> None:
        """Connect to the master Sentinel names now, unless connected already."""
        if not self.is_connected and self.connection_pool.is_master:
            self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health, retry_socket_connect)


class MasterFollowingSSLConnection(MasterFollowingConnection, SSLConnection):
    """`MasterFollowingConnection` over TLS (`rediss://`)."""


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """A pool of connections to Sentinel's current master that waits for a free connection.

    redis-py's `SentinelConnectionPool` fails at once past `max_connections`; with
    `BlockingConnectionPool` after it in the bases, `get_connection` and `release` are the
    blocking ones (waiting up to `timeout`), while connecting asks Sentinel for the master.
    """

    async def aclose(self) -> None:
        """Close the pool and the connections to the sentinels, which only it uses."""
        await super().aclose()
        await self.sentinel_manager.aclose()


def sentinel_client(settings: RedisSettings, **options: Any) -> Redis:
    """A client of the master that Sentinel names now, and again after each failover.

    Each new connection asks the sentinels where the master is; a connection to a master that
    died fails and, with `retry_on_error` in `options`, the command is retried on a new one. A
    former master that came back as a replica answers writes with READONLY, which redis-py
    turns into a reconnect too. `options` are those of a `BlockingConnectionPool` and its
    connections; the password and database come from `settings.url`.
    """
    connection = dict(parse_url(settings.url))
    # The master's address comes from the sentinels, not from the URL.
    connection.pop("host", None)
    connection.pop("port", None)
    connection |= master_following(settings)
    connection |= options
    # redis-py gives the sentinels the socket options only when it gets no sentinel_kwargs;
    # ours carry the sentinels' password, so they copy the socket options themselves.
    sentinel_kwargs = {key: value for key, value in connection.items() if key.startswith("socket_")}
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # untyped in redis-py 8.1
        settings.sentinel_addresses,
        sentinel_kwargs=sentinel_kwargs | sentinel_auth(settings),
        **connection,
    )
    return cast(
        Redis,
        sentinel.master_for(
            settings.sentinel_master, connection_pool_class=BlockingSentinelConnectionPool
        ),
    )


def master_following(settings: RedisSettings) -> dict[str, Any]:
    """The connection class to give a sentinel-managed pool: over TLS for `rediss://`."""
    tls = settings.url.startswith("rediss://")
    return {"connection_class": MasterFollowingSSLConnection if tls else MasterFollowingConnection}


def sentinel_auth(settings: RedisSettings) -> dict[str, Any]:
    """The connection options that authenticate to the sentinels themselves, if they ask."""
    return {"password": settings.sentinel_password} if settings.sentinel_password else {}
