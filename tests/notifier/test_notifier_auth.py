"""Access tokens: the claims the notifier accepts at the handshake, and those it refuses."""

from __future__ import annotations

import time

import jwt
import pytest
from litestar.exceptions import NotAuthorizedException

from devstack.tokens import TokenFactory
from notifier.auth import AccessToken

SECRET = "s" * 40


def decode(encoded: str, secret: str = SECRET) -> AccessToken:
    return AccessToken.decode(encoded, secret, "HS256", require_claims=("sub", "role", "exp"))


def sign(claims: dict[str, object]) -> str:
    return jwt.encode(claims, SECRET, algorithm="HS256")


def test_token_from_the_test_factory_decodes_with_its_role(
    make_token: TokenFactory, jwt_secret: str
) -> None:
    token = decode(make_token("root", role="ADMIN"), secret=jwt_secret)

    assert (token.sub, token.role) == ("root", "ADMIN")


def test_token_with_only_sub_role_and_exp_is_accepted() -> None:
    token = decode(sign({"sub": "alice", "role": "USER", "exp": int(time.time()) + 60}))

    assert (token.sub, token.role) == ("alice", "USER")


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"sub": "alice", "exp": 10**10}, id="no role"),
        pytest.param({"sub": "alice", "role": "ROOT", "exp": 10**10}, id="unknown role"),
        pytest.param({"role": "USER", "exp": 10**10}, id="no sub"),
        pytest.param({"sub": "alice", "role": "USER"}, id="no exp"),
        pytest.param({"sub": "alice", "role": "USER", "exp": 1}, id="expired"),
    ],
)
def test_token_missing_or_bad_claims_is_refused(claims: dict[str, object]) -> None:
    with pytest.raises(NotAuthorizedException):
        decode(sign(claims))


def test_token_signed_with_another_secret_is_refused() -> None:
    with pytest.raises(NotAuthorizedException):
        decode(sign({"sub": "alice", "role": "USER", "exp": 10**10}), secret="x" * 40)
