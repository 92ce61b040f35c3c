"""Real Redis and PostgreSQL for the whole test session, on free ports, in throwaway directories.

Fixtures:
- `redis_server` (session): a `RedisServer` with AOF and a password; tests may kill and restart it.
- `redis_url` (function): its URL, after FLUSHALL; restarts the server if a test left it down.
- `postgres_server` (session): a `PostgresServer` (fsync off).
- `database_url` (function): a fresh database holding Conduit's migrated schema.
- `jwt_secret` (session) and `make_token(sub, role="USER", ttl_s=3600)`.
- `stack` (session): the four services as processes on free ports, with their own Redis.
"""

from __future__ import annotations

import re
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, settings
from redis import Redis as SyncRedis

from devstack.ports import free_port
from devstack.servers import PostgresServer, RedisServer
from devstack.services import SERVICES, run_migrations, start_services, terminate_all
from devstack.stack import Stack
from devstack.tokens import TokenFactory, mint_token
from shared.connections import redis_client
from shared.jobstore import JobStore
from shared.settings import RedisSettings
from shared.streams import Lane

# Timing belongs in `make bench`: on a loaded machine a slow example is no failure, nor is
# input generation that takes seconds.
settings.register_profile("conduit", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("conduit")

TEMPLATE_DATABASE = "conduit_template"
STACK_DATABASE = "conduit_stack"


def _start_redis(directory: Path) -> RedisServer:
    server = RedisServer(directory, free_port(), secrets.token_urlsafe(24))
    server.start()
    return server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server for the session, AOF on, password set."""
    server = _start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session Redis's URL, emptied (FLUSHALL) for this test."""
    if not redis_server.is_running:
        redis_server.start()
    client = SyncRedis.from_url(redis_server.url)
    try:
        client.flushall()
    finally:
        client.close()
    return redis_server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the session, fsync off."""
    # Not under pytest's tmp dir: that is private to us, and PostgreSQL may run as another user.
    root = Path(tempfile.mkdtemp(prefix="conduit-pg-"))
    server = PostgresServer(root / "data", free_port(), fsync=False)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def template_database(postgres_server: PostgresServer) -> str:
    """The name of a database migrated once per session, which per-test databases copy."""
    run_migrations(postgres_server.create_database(TEMPLATE_DATABASE))
    return TEMPLATE_DATABASE


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest, postgres_server: PostgresServer, template_database: str
) -> Iterator[str]:
    """A fresh database with Conduit's schema, dropped after the test."""
    if not postgres_server.is_running:
        postgres_server.start()
    stem = re.sub(r"[^a-z0-9]+", "_", request.node.name.lower()).strip("_")[:40]
    name = f"t_{stem}_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name, template=template_database)
    yield url
    if postgres_server.is_running:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    """The HS256 secret every test token and service shares."""
    return secrets.token_urlsafe(48)


@pytest.fixture(scope="session")
def make_token(jwt_secret: str) -> TokenFactory:
    """make_token(sub, role="USER", ttl_s=3600): a JWT signed with `jwt_secret`."""

    def make(sub: str, role: str = "USER", ttl_s: int = 3600) -> str:
        return mint_token(jwt_secret, sub, role, ttl_s)

    return make


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    template_database: str,
    jwt_secret: str,
) -> Iterator[Stack]:
    """The four services on free ports, with a Redis of their own and a migrated database.

    Their logs are in `<pytest tmp>/stack-logs*/<service>.log`. Tests that kill or restart a
    service or the Redis should leave them running (`.restart()`), as later tests share them.
    """
    redis_server = _start_redis(tmp_path_factory.mktemp("stack-redis"))
    try:
        if not postgres_server.database_exists(STACK_DATABASE):
            postgres_server.create_database(STACK_DATABASE, template=template_database)
        database_url = postgres_server.url(STACK_DATABASE)
        processes = start_services(
            SERVICES,
            {spec.name: free_port() for spec in SERVICES},
            redis_url=redis_server.url,
            database_url=database_url,
            jwt_secret=jwt_secret,
            log_level="INFO",
            log_dir=tmp_path_factory.mktemp("stack-logs"),
        )
        try:
            yield Stack(
                services={process.name: process for process in processes},
                redis_url=redis_server.url,
                database_url=database_url,
                jwt_secret=jwt_secret,
                redis=redis_server,
            )
        finally:
            terminate_all(processes)
    finally:
        redis_server.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """An async client of the test's Redis that, like every service's, survives its restarts."""
    client = redis_client(RedisSettings(url=redis_url))
    yield client
    await client.aclose()


@pytest.fixture
async def store(redis: aioredis.Redis) -> JobStore:
    """A job store on the test's Redis, with the default queue's normal lane ready to read."""
    job_store = JobStore(redis)
    await job_store.ensure_group(Lane("default"))
    return job_store
