"""The gateway as its composition root builds it, on the test's own Redis and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar.testing import AsyncTestClient

from gateway.app import Settings, create_app
from shared.settings import DatabaseSettings, JwtSettings, QueueSettings, RedisSettings
from tests.api import Client


@pytest.fixture
def gateway_settings(redis_url: str, database_url: str, jwt_secret: str) -> Settings:
    """Two queues, `default` first; the test's Redis and database."""
    return Settings(
        redis=RedisSettings(url=redis_url),
        database=DatabaseSettings(url=database_url),
        queues=QueueSettings(names=("default", "reports")),
        jwt=JwtSettings(secret=jwt_secret),
    )


@pytest.fixture
async def client(gateway_settings: Settings) -> AsyncIterator[Client]:
    """An HTTP client of the whole gateway app, served in-process."""
    async with AsyncTestClient(app=create_app(gateway_settings)) as test_client:
        yield test_client
