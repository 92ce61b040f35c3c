"""`POST /v1/subscriptions`: a short-lived token that lets a client join an entity room.

The gateway decides who may watch what (the notifier has no domain knowledge): a `RoomPolicy`
answers, and a yes becomes a JWT (HS256 with JWT_SECRET, `typ` "subscription") naming the user
and the room, valid for about a minute, which the client hands the notifier in a `join` message.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any, Protocol, runtime_checkable

import jwt
import msgspec
from litestar import Request, post
from litestar.handlers import HTTPRouteHandler
from litestar.params import JSONBody
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_201_CREATED

from gateway.auth import Principal
from gateway.problems import problem
from shared.contracts.ws import SubscriptionClaims, is_entity_room
from shared.settings import JwtSettings

SUBSCRIPTION_TTL_S = 60


class SubscriptionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The room to join, `entity:<kind>:<id>`."""

    room: str


class SubscriptionGrant(msgspec.Struct, frozen=True, kw_only=True):
    """A token to send the notifier in `{"type": "join", "token": ...}` within `expires_in_s`."""

    room: str
    token: str
    expires_in_s: int


@runtime_checkable  # Litestar checks an injected dependency against its annotation
class RoomPolicy(Protocol):
    """Who may join which room: the domain's rule, pluggable."""

    def refusal(self, principal: Principal, room: str) -> str | None:
        """None when `principal` may join the well-formed entity room `room`, else why not."""


class EntityKindPolicy:
    """The default rule: admins may join every entity room; users those of the open kinds.

    `open_kinds` None opens every kind to every signed-in user: right when entity rooms carry
    nothing private (a job's progress per order, say), and the default for that reason. A domain
    whose entity events are private plugs in a policy that checks ownership instead.
    User and role rooms are never granted here: each connection is put in its own at connect.
    """

    def __init__(self, open_kinds: Collection[str] | None = None) -> None:
        self._open_kinds = None if open_kinds is None else frozenset(open_kinds)

    def refusal(self, principal: Principal, room: str) -> str | None:
        """Why `principal` may not join `room`, or None."""
        if principal.is_admin or self._open_kinds is None:
            return None
        kind = room.split(":", 2)[1]
        return None if kind in self._open_kinds else f"rooms of kind {kind!r} are not open"


def subscription_routes(
    jwt_settings: JwtSettings,
    policy: RoomPolicy | None = None,
    ttl_s: int = SUBSCRIPTION_TTL_S,
) -> list[HTTPRouteHandler]:
    """The subscription handler, signing with the gateway's JWT secret."""
    rule = policy or EntityKindPolicy()

    @post("/v1/subscriptions", status_code=HTTP_201_CREATED, summary="Get a room's join token")
    async def create_subscription(
        request: Request[Principal, Token, Any], data: JSONBody[SubscriptionRequest]
    ) -> SubscriptionGrant:
        """A token to join an entity room, after the access check."""
        if not is_entity_room(data.room):
            raise problem(
                422,
                f"{data.room[:200]!r} is not an entity room (entity:<kind>:<id>)",
                slug="invalid-room",
            )
        reason = rule.refusal(request.user, data.room)
        if reason is not None:
            raise problem(403, f"may not join {data.room}: {reason}", room=data.room)
        claims = SubscriptionClaims(
            sub=request.user.sub, room=data.room, exp=int(time.time()) + ttl_s
        )
        token = jwt.encode(
            msgspec.structs.asdict(claims), jwt_settings.secret, algorithm=jwt_settings.algorithm
        )
        return SubscriptionGrant(room=data.room, token=token, expires_in_s=ttl_s)

    return [create_subscription]
