"""The harness's database fixture: a fresh, migrated database per test."""

from __future__ import annotations

from devstack.servers import PostgresServer


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_database_url_holds_the_migrated_schema(
    database_url: str, postgres_server: PostgresServer
) -> None:
    assert database_url.startswith("postgresql+asyncpg://postgres@127.0.0.1:")
    version = postgres_server.psql("SELECT version_num FROM alembic_version", _name(database_url))
    assert version != ""


def test_database_url_gives_each_test_its_own_database(
    database_url: str, postgres_server: PostgresServer
) -> None:
    postgres_server.psql("CREATE TABLE claimed_by_one_test (id int)", _name(database_url))


def test_database_url_gives_each_test_its_own_database_again(
    database_url: str, postgres_server: PostgresServer
) -> None:
    postgres_server.psql("CREATE TABLE claimed_by_one_test (id int)", _name(database_url))
