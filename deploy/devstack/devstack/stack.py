"""The four services running against one Redis and one PostgreSQL database, as clients see them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from devstack.servers import RedisServer
from devstack.services import ServiceProcess
from devstack.tokens import mint_token


@dataclass(frozen=True, kw_only=True)
class Stack:
    """Running services by name, where to reach them, and the secrets and stores they share."""

    services: Mapping[str, ServiceProcess]
    redis_url: str
    database_url: str
    jwt_secret: str
    redis: RedisServer | None = None

    @property
    def gateway_url(self) -> str:
        """`http://127.0.0.1:port` of the gateway."""
        return self.services["gateway"].base_url

    @property
    def notifier_url(self) -> str:
        """`http://127.0.0.1:port` of the notifier."""
        return self.services["notifier"].base_url

    @property
    def notifier_ws_url(self) -> str:
        """`ws://127.0.0.1:port/ws`: the notifier's WebSocket endpoint."""
        return self.notifier_url.replace("http://", "ws://", 1) + "/ws"

    @property
    def health_url(self) -> str:
        """`http://127.0.0.1:port` of the health service."""
        return self.services["health"].base_url

    @property
    def worker_url(self) -> str:
        """`http://127.0.0.1:port` of the worker's HTTP endpoints."""
        return self.services["worker"].base_url

    def token(self, sub: str, role: str = "USER", ttl_s: int = 3600) -> str:
        """A JWT these services accept."""
        return mint_token(self.jwt_secret, sub, role, ttl_s)
