"""Settings read once from the environment into validated msgspec Structs, one per concern."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Annotated, ClassVar, Literal, TypeVar

import msgspec

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class SettingsError(ValueError):
    """The environment holds a missing or invalid setting."""


class RedisSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where Redis is; `REDIS_URL` carries the password (redis://:secret@host:port/0).

    With `REDIS_CLUSTER=true`, `REDIS_URL` names any one node of a Redis Cluster (database 0);
    the client discovers the others.

    With `REDIS_SENTINELS` (host:port,host:port,...), Redis Sentinel names the master of
    `REDIS_SENTINEL_MASTER`, again after a failover; `REDIS_URL` then gives only the password,
    database and scheme, and its host and port are not used. `REDIS_SENTINEL_PASSWORD` is the
    sentinels' own password (`requirepass` in sentinel.conf), if they have one.
    """

    env_prefix: ClassVar[str] = "REDIS_"

    url: str = "redis://127.0.0.1:6379/0"
    cluster: bool = False
    # Connections one process opens at most; a command waits up to `pool_timeout_s` for one.
    max_connections: Annotated[int, msgspec.Meta(ge=2, le=10_000)] = 100
    pool_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=60)] = 5.0
    sentinels: tuple[str, ...] = ()
    # The name Redis's own examples and the common Helm charts give a sentinel-monitored master,
    # so that a stock Sentinel deployment works without setting it.
    sentinel_master: str = "mymaster"
    # Empty: the sentinels ask for no password.
    sentinel_password: str = ""

    def __post_init__(self) -> None:
        if self.sentinels and self.cluster:
            raise SettingsError(
                "REDIS_SENTINELS and REDIS_CLUSTER=true exclude each other: "
                "Sentinel watches one master, a cluster has its own failover"
            )
        if self.sentinels and not self.url.startswith(("redis://", "rediss://")):
            raise SettingsError("with REDIS_SENTINELS, REDIS_URL must be redis:// or rediss://")
        if self.sentinels and not self.sentinel_master:
            raise SettingsError("REDIS_SENTINEL_MASTER must name the master sentinels watch")
        for address in self.sentinels:
            _host_and_port(address)

    @property
    def sentinel_addresses(self) -> tuple[tuple[str, int], ...]:
        """`REDIS_SENTINELS` as (host, port) pairs."""
        return tuple(_host_and_port(address) for address in self.sentinels)


def _host_and_port(address: str) -> tuple[str, int]:
    """`host:port` (or `[v6 address]:port`) as a pair, or a SettingsError naming it."""
    host, _, port = address.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise SettingsError(f"REDIS_SENTINELS entry {address!r} is not host:port")
    return host, int(port)


class DatabaseSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where PostgreSQL is, as a SQLAlchemy asyncpg URL (`DATABASE_URL`)."""

    env_prefix: ClassVar[str] = "DATABASE_"

    url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/conduit"


class JwtSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How access tokens are signed; `JWT_SECRET` has no default on purpose."""

    env_prefix: ClassVar[str] = "JWT_"

    secret: str
    algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    ttl_s: int = 3600

    def __post_init__(self) -> None:
        if len(self.secret) < 32:
            raise SettingsError("JWT_SECRET must be at least 32 characters")


class HttpSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Where a service listens (`HTTP_HOST`, `HTTP_PORT`)."""

    env_prefix: ClassVar[str] = "HTTP_"

    host: str = "127.0.0.1"
    port: int = 8000


class LogSettings(msgspec.Struct, frozen=True, kw_only=True):
    """The starting log level (`LOG_LEVEL`)."""

    env_prefix: ClassVar[str] = "LOG_"

    level: LogLevel = "INFO"


class QueueSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Which queues exist (`QUEUE_NAMES`, comma-separated); the first is the default."""

    env_prefix: ClassVar[str] = "QUEUE_"

    names: tuple[str, ...] = ("default",)

    def __post_init__(self) -> None:
        if not self.names:
            raise SettingsError("QUEUE_NAMES must name at least one queue")
        for name in self.names:
            if not name.replace("-", "").replace("_", "").isalnum() or len(name) > 64:
                raise SettingsError(f"queue name {name!r} must be 1-64 of [A-Za-z0-9_-]")

    @property
    def default(self) -> str:
        """The queue a job goes to when it names none."""
        return self.names[0]


T = TypeVar("T", bound=msgspec.Struct)


def from_env(
    kind: type[T],
    environ: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> T:
    """Build one settings Struct from the environment, or raise SettingsError saying what is wrong.

    A field `port` of a Struct whose `env_prefix` is `HTTP_` reads `HTTP_PORT`; a tuple or list
    field reads a comma-separated value. `defaults` gives values, by variable, where the
    environment has none (a service's own port, say).
    """
    env = {**(defaults or {}), **(os.environ if environ is None else environ)}
    prefix: str = getattr(kind, "env_prefix")  # noqa: B009 - a ClassVar, invisible to the type
    raw: dict[str, object] = {}
    for field in msgspec.structs.fields(kind):
        variable = f"{prefix}{field.name.upper()}"
        if variable not in env:
            continue
        value = env[variable]
        if getattr(field.type, "__origin__", None) in (tuple, list):
            raw[field.name] = [part.strip() for part in value.split(",") if part.strip()]
        else:
            raw[field.name] = value
    try:
        return msgspec.convert(raw, kind, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(f"{kind.__name__}: {exc}") from exc
