"""mint_token: HS256 JWTs with the claims Conduit's services read."""

from __future__ import annotations

import time

import jwt
import pytest

from devstack.tokens import TokenFactory, mint_token

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


def test_minted_token_carries_sub_role_and_expiry() -> None:
    before = int(time.time())
    claims = jwt.decode(mint_token(SECRET, "alice", "ADMIN", ttl_s=60), SECRET, ["HS256"])
    assert claims["sub"] == "alice"
    assert claims["role"] == "ADMIN"
    assert before + 60 <= claims["exp"] <= int(time.time()) + 60
    assert claims["iat"] <= claims["exp"] - 60


def test_minted_token_is_refused_with_another_secret() -> None:
    token = mint_token(SECRET, "alice", "USER", ttl_s=60)
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, SECRET + "x", ["HS256"])


def test_token_with_negative_ttl_is_expired() -> None:
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(mint_token(SECRET, "alice", "USER", ttl_s=-10), SECRET, ["HS256"])


def test_make_token_fixture_signs_with_the_session_secret(
    make_token: TokenFactory, jwt_secret: str
) -> None:
    claims = jwt.decode(make_token("bob"), jwt_secret, ["HS256"])
    assert (claims["sub"], claims["role"]) == ("bob", "USER")
