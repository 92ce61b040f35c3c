"""Redis clients built one way for every service, so that all of them survive a Redis restart."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.settings import RedisSettings

# Without an explicit list, redis-py (7.1 to 8.1, measured) gives up on the first command after a
# server restart: every retry reuses the dead socket and fails with "Connection closed by server".
RETRY_ON = [RedisConnectionError, RedisTimeoutError]


def redis_client(settings: RedisSettings) -> Redis:
    """A client that reconnects and retries a command when the connection was lost."""
    return Redis.from_url(settings.url, retry_on_error=list(RETRY_ON))
