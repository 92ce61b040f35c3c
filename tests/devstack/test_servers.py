"""RedisServer and PostgresServer: real servers from the machine's binaries."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from devstack.ports import free_port
from devstack.servers import PostgresServer, RedisServer, ServerError


def test_redis_keeps_acknowledged_writes_across_kill_9(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", free_port(), "s3cret-password")
    server.start()
    try:
        client = redis.Redis.from_url(server.url)
        try:
            client.set("survivor", "yes")
        finally:
            client.close()
        time.sleep(1.2)  # appendfsync everysec: the write reaches the disk within a second
        server.kill()
        assert not server.is_running
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            assert client.get("survivor") == b"yes"
        finally:
            client.close()
    finally:
        server.stop()


def test_redis_refuses_clients_without_the_password(redis_server: RedisServer) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        with pytest.raises(redis.AuthenticationError):
            client.ping()
    finally:
        client.close()


def test_redis_url_fixture_starts_each_test_empty(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
        client.set("left-behind", "1")
    finally:
        client.close()


def test_redis_url_fixture_starts_each_test_empty_again(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.dbsize() == 0
    finally:
        client.close()


def test_redis_start_fails_loudly_when_the_port_is_taken(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    rival = RedisServer(tmp_path / "rival", redis_server.port, "other-password")
    with pytest.raises(ServerError, match="exited"):
        rival.start()
    assert not rival.is_running


def test_postgres_creates_databases_from_a_template(postgres_server: PostgresServer) -> None:
    postgres_server.create_database("devstack_source")
    postgres_server.psql("CREATE TABLE marker (id int)", dbname="devstack_source")
    postgres_server.psql("INSERT INTO marker VALUES (7)", dbname="devstack_source")

    url = postgres_server.create_database("devstack_copy", template="devstack_source")

    assert url.endswith(f":{postgres_server.port}/devstack_copy")
    assert postgres_server.database_exists("devstack_copy")
    assert postgres_server.psql("SELECT id FROM marker", dbname="devstack_copy") == "7"
    postgres_server.drop_database("devstack_copy")
    postgres_server.drop_database("devstack_source")
    assert not postgres_server.database_exists("devstack_copy")


def test_postgres_rejects_database_names_that_are_not_identifiers(
    postgres_server: PostgresServer,
) -> None:
    with pytest.raises(ValueError, match="must match"):
        postgres_server.create_database('x"; DROP DATABASE postgres; --')


def test_postgres_keeps_committed_data_across_kill_9(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg" / "data", free_port(), fsync=True)
    server.start()
    try:
        server.create_database("durable")
        server.kill()
        server.start()
        assert server.database_exists("durable")
    finally:
        server.stop()
