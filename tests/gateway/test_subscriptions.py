"""`POST /v1/subscriptions`: entity-room join tokens, after the room policy's check."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import jwt
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from devstack.tokens import TokenFactory
from gateway.auth import create_jwt_auth
from gateway.problems import EXCEPTION_HANDLERS, problem_details_plugin
from gateway.subscriptions import EntityKindPolicy, RoomPolicy, subscription_routes
from shared.contracts.ws import SubscriptionClaims
from shared.settings import JwtSettings
from tests.api import Client, bearer


def subscription_app(jwt_secret: str, policy: RoomPolicy | None = None) -> Litestar:
    """The route wired as the gateway's composition root wires it."""
    settings = JwtSettings(secret=jwt_secret)
    return Litestar(
        route_handlers=subscription_routes(settings, policy),
        on_app_init=[create_jwt_auth(settings).on_app_init],
        plugins=[problem_details_plugin()],
        exception_handlers=EXCEPTION_HANDLERS,
        logging_config=None,
    )


@pytest.fixture
async def client(jwt_secret: str) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=subscription_app(jwt_secret)) as test_client:
        yield test_client


async def test_user_gets_a_short_lived_token_naming_them_and_the_room(
    client: Client, make_token: TokenFactory, jwt_secret: str
) -> None:
    response = await client.post(
        "/v1/subscriptions", json={"room": "entity:order:42"}, headers=bearer(make_token("alice"))
    )

    assert response.status_code == 201
    body = response.json()
    assert (body["room"], body["expires_in_s"]) == ("entity:order:42", 60)
    claims = msgspec.convert(
        jwt.decode(body["token"], jwt_secret, algorithms=["HS256"]), SubscriptionClaims
    )
    assert (claims.sub, claims.room, claims.typ) == ("alice", "entity:order:42", "subscription")
    assert 55 <= claims.exp - time.time() <= 61


@pytest.mark.parametrize(
    "room",
    ["user:bob", "role:ADMIN", "entity:order", "entity:Order:1", "entity:order:", "anything"],
)
async def test_rooms_that_are_not_entity_rooms_are_refused_with_422(
    client: Client, make_token: TokenFactory, room: str
) -> None:
    response = await client.post(
        "/v1/subscriptions", json={"room": room}, headers=bearer(make_token("alice", "ADMIN"))
    )

    assert response.status_code == 422
    assert response.json()["type"] == "urn:conduit:problem:invalid-room"


async def test_without_a_token_there_is_no_subscription(client: Client) -> None:
    response = await client.post("/v1/subscriptions", json={"room": "entity:order:42"})

    assert response.status_code == 401


async def test_a_policy_with_open_kinds_refuses_users_other_kinds_with_403_but_not_admins(
    jwt_secret: str, make_token: TokenFactory
) -> None:
    app = subscription_app(jwt_secret, EntityKindPolicy(open_kinds={"order"}))
    async with AsyncTestClient(app=app) as client:
        open_kind = await client.post(
            "/v1/subscriptions", json={"room": "entity:order:1"}, headers=bearer(make_token("a"))
        )
        closed_kind = await client.post(
            "/v1/subscriptions", json={"room": "entity:invoice:1"}, headers=bearer(make_token("a"))
        )
        admin = await client.post(
            "/v1/subscriptions",
            json={"room": "entity:invoice:1"},
            headers=bearer(make_token("root", "ADMIN")),
        )

    assert (open_kind.status_code, closed_kind.status_code, admin.status_code) == (201, 403, 201)
    assert closed_kind.json()["detail"] == (
        "may not join entity:invoice:1: rooms of kind 'invoice' are not open"
    )
