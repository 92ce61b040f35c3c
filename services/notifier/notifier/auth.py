"""Authentication of a WebSocket: a JWT in the `token` query parameter, or in the first message.

Browsers cannot set headers on a WebSocket handshake nor read the status of a refused one, so the
token comes in the query string and a refused client is accepted, then closed with 4401 and a
reason it can read. A client that keeps its token out of URLs (and so out of proxy logs) connects
without `token` and sends it in an `auth` message first, within a short deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
import msgspec
from litestar.connection import ASGIConnection, WebSocket
from litestar.enums import ScopeType
from litestar.exceptions import NotAuthorizedException, WebSocketDisconnect
from litestar.middleware import DefineMiddleware
from litestar.middleware.authentication import AuthenticationResult
from litestar.security.jwt import JWTAuth, Token
from litestar.security.jwt.middleware import JWTAuthenticationMiddleware

from shared.contracts.ws import (
    CLOSE_REASON_MAX_BYTES,
    CLOSE_UNAUTHORIZED,
    Auth,
    ClientMessage,
    Role,
    SubscriptionClaims,
)
from shared.settings import JwtSettings

if TYPE_CHECKING:
    from litestar.types import Receive, Scope, Send

QUERY_PARAMETER = "token"

logger = logging.getLogger(__name__)

_client_message = msgspec.json.Decoder(ClientMessage)


@dataclass
class AccessToken(Token):
    """Conduit's access token: Litestar's claims plus a required `role`."""

    role: Role = field(kw_only=True)

    @classmethod
    def decode_payload(cls, *args: Any, **kwargs: Any) -> Any:
        """Verify the JWT; a missing `iat` (Conduit requires only sub, role, exp) means now."""
        payload = super().decode_payload(*args, **kwargs)
        payload.setdefault("iat", int(time.time()))
        return payload


REQUIRED_CLAIMS = ("sub", "role", "exp")


class Identity(msgspec.Struct, frozen=True, kw_only=True):
    """Who a connection is, as its token says, and until when (`exp`, Unix seconds)."""

    sub: str
    role: Role
    expires_at: float


def identity_from(token: AccessToken) -> Identity:
    """The identity a verified token names; the notifier keeps no user store."""
    return Identity(sub=token.sub, role=token.role, expires_at=token.exp.timestamp())


async def identity_of(token: AccessToken, _: ASGIConnection[Any, Any, Any, Any]) -> Identity:
    """`identity_from`, as Litestar's JWT middleware calls it."""
    return identity_from(token)


class TokenVerifier:
    """Verifies access tokens sent on an open socket, as the handshake verifies them."""

    def __init__(self, settings: JwtSettings) -> None:
        self._settings = settings

    def identity(self, encoded: str) -> Identity:
        """The identity of a valid token; NotAuthorizedException otherwise."""
        token = AccessToken.decode(
            encoded,
            self._settings.secret,
            self._settings.algorithm,
            require_claims=REQUIRED_CLAIMS,
        )
        return identity_from(token)

    def subscription(self, encoded: str) -> SubscriptionClaims:
        """The claims of a valid subscription token; InvalidSubscriptionError otherwise."""
        try:
            claims = jwt.decode(
                encoded,
                self._settings.secret,
                algorithms=[self._settings.algorithm],
                options={"require": ["sub", "room", "exp", "typ"]},
            )
            return msgspec.convert(claims, SubscriptionClaims)
        except (jwt.InvalidTokenError, msgspec.ValidationError) as exc:
            raise InvalidSubscriptionError(str(exc)) from exc


async def first_message_identity(
    socket: WebSocket[Any, Any, Any], tokens: TokenVerifier, *, timeout_s: float, max_bytes: int
) -> Identity:
    """The identity in the `auth` message an accepted client sends first, within `timeout_s`.

    NotAuthorizedException, saying why, when none comes in time, the first message is another,
    or its token is refused; WebSocketDisconnect when the client leaves first.
    """
    try:
        async with asyncio.timeout(timeout_s):
            event = await socket.receive()
    except TimeoutError:
        raise NotAuthorizedException(f"no auth message within {timeout_s:g} s") from None
    if event["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(detail="disconnect event", code=event["code"])
    text = event.get("text")
    data = text if isinstance(text, str) else event.get("bytes")
    if not isinstance(data, str | bytes):
        data = b""
    if len(data) > max_bytes:
        raise NotAuthorizedException(f"auth message over {max_bytes} bytes")
    try:
        message = _client_message.decode(data)
    except msgspec.DecodeError:
        message = None
    if not isinstance(message, Auth):
        raise NotAuthorizedException("the first message must be auth, or connect with a token")
    return tokens.identity(message.token)


class InvalidSubscriptionError(Exception):
    """A subscription token is malformed, expired, badly signed or not a subscription token."""


class QueryTokenAuthenticationMiddleware(JWTAuthenticationMiddleware):
    """Litestar's JWT middleware reading `?token=` and refusing WebSockets with a close code.

    A WebSocket without a `token` parameter goes on with no user: its handler expects the token
    in the first message.
    """

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Verify the token in the query string."""
        encoded = connection.query_params.get(QUERY_PARAMETER)
        if not encoded:
            raise NotAuthorizedException("missing token")
        return await self.authenticate_token(encoded_token=encoded, connection=connection)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Authenticate a WebSocket before its handler runs; other scopes go the usual way."""
        if scope["type"] != ScopeType.WEBSOCKET:
            await super().__call__(scope, receive, send)
            return
        if QUERY_PARAMETER not in ASGIConnection(scope).query_params:
            scope["user"] = None
            await self.app(scope, receive, send)
            return
        try:
            result = await self.authenticate_request(ASGIConnection(scope))
        except NotAuthorizedException as exc:
            await refuse(WebSocket(scope, receive, send), str(exc.detail))
            return
        scope["user"] = result.user
        scope["auth"] = result.auth
        await self.app(scope, receive, send)


async def refuse(socket: WebSocket[Any, Any, Any], detail: str) -> None:
    """Accept, then close with 4401, so that a browser can read why it was refused."""
    logger.info("websocket refused: %s", detail)
    reason = f"unauthorized: {detail}".encode()[:CLOSE_REASON_MAX_BYTES]
    await socket.accept()
    await socket.close(code=CLOSE_UNAUTHORIZED, reason=reason.decode(errors="ignore"))


def query_token_auth(settings: JwtSettings) -> DefineMiddleware:
    """The middleware that authenticates a WebSocket route by its `token` query parameter."""
    auth = JWTAuth[Identity, AccessToken](
        token_secret=settings.secret,
        algorithm=settings.algorithm,
        retrieve_user_handler=identity_of,
        token_cls=AccessToken,
        require_claims=REQUIRED_CLAIMS,
        authentication_middleware_class=QueryTokenAuthenticationMiddleware,
    )
    return auth.middleware
