"""Dev sign-in: a token for any user and role, for a local demo stack only.

The route exists only when `CONSOLE_DEV_SIGN_IN` is true, which the devstack (`make run` and the
test harness) sets and nothing else does: whoever can call it can act as any admin.
"""

from __future__ import annotations

import logging
import time
from typing import Annotated, Final

import jwt
import msgspec
from litestar import post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody
from litestar.status_codes import HTTP_200_OK

from gateway.auth import Role
from shared.settings import JwtSettings

log = logging.getLogger(__name__)


class DevUser(msgspec.Struct, frozen=True, kw_only=True):
    """A user the sign-in page offers to sign in as."""

    sub: Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]
    role: Role = "USER"


# Suggestions only: any well-formed `sub` may be asked for.
DEV_USERS: Final = (
    DevUser(sub="alice", role="USER"),
    DevUser(sub="bob", role="USER"),
    DevUser(sub="admin", role="ADMIN"),
)


class DevToken(msgspec.Struct, frozen=True, kw_only=True):
    """An access token for `sub` with `role`, valid for `expires_in_s`."""

    token: str
    sub: str
    role: Role
    expires_in_s: int


def mint(user: DevUser, settings: JwtSettings, now_s: int) -> DevToken:
    """A token exactly like the ones the stack's services accept from a real issuer."""
    claims = {"sub": user.sub, "role": user.role, "iat": now_s, "exp": now_s + settings.ttl_s}
    token = jwt.encode(claims, settings.secret, algorithm=settings.algorithm)
    return DevToken(token=token, sub=user.sub, role=user.role, expires_in_s=settings.ttl_s)


def dev_sign_in_route(settings: JwtSettings) -> HTTPRouteHandler:
    """`POST /console/api/dev-token`, public; register it only in dev mode."""
    log.warning("console dev sign-in is on: anyone reaching the gateway may mint any token")

    @post(
        "/console/api/dev-token",
        status_code=HTTP_200_OK,
        include_in_schema=False,
        opt={"exclude_from_auth": True},
    )
    async def dev_token(data: JSONBody[DevUser]) -> DevToken:
        """A token for the user asked for."""
        return mint(data, settings, int(time.time()))

    return dev_token
