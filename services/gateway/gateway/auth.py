"""Bearer JWT authentication: who calls, and with which role."""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from litestar.connection import ASGIConnection, Request
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import JWTAuth, Token

from gateway.problems import problem
from shared.logging import bind_to_logs
from shared.settings import JwtSettings

Role = Literal["USER", "ADMIN"]
PUBLIC_PATHS = ["^/livez$", "^/readyz$", "^/metrics", "^/schema"]


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """The caller, from a verified token."""

    sub: str
    role: Role

    @property
    def is_admin(self) -> bool:
        """Admins see and steer every job."""
        return self.role == "ADMIN"


async def principal_from_token(
    token: Token, connection: ASGIConnection[Any, Any, Any, Any]
) -> Principal | None:
    """A token is only good with a known role; anything else is unauthenticated."""
    role = token.extras.get("role")
    if role not in ("USER", "ADMIN") or not token.sub:
        return None
    # The rest of the request runs in this task: its log lines name the caller.
    bind_to_logs(user_id=token.sub)
    return Principal(sub=token.sub, role=role)


def admin_only(
    connection: ASGIConnection[Any, Principal, Token, Any], _handler: BaseRouteHandler
) -> None:
    """A guard: the route is for admins; anyone else gets 403."""
    # Litestar answers OPTIONS itself, past authentication: there is no user to check.
    if isinstance(connection, Request) and connection.method == "OPTIONS":
        return
    if not connection.user.is_admin:
        raise problem(403, f"{connection.url.path} is for admins only")


def create_jwt_auth(settings: JwtSettings) -> JWTAuth[Principal, Token]:
    """Litestar's JWT auth on every route but the public probes, metrics and schema."""
    return JWTAuth[Principal, Token](
        token_secret=settings.secret,
        algorithm=settings.algorithm,
        retrieve_user_handler=principal_from_token,
        exclude=PUBLIC_PATHS,
    )
