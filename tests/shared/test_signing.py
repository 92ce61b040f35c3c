"""Callback signatures: what `sign` makes `verify` accepts, and nothing else."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from shared.signing import DEFAULT_TOLERANCE_S, sign, verify

# Secrets are UTF-8 text (no lone surrogates) from an environment variable, which cannot hold NUL;
# NUL matters because HMAC pads a short key with zero bytes, so "k" and "k\0" are the same key.
secrets = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
    min_size=1,
    max_size=80,
)
timestamps = st.integers(min_value=0, max_value=10**11)
bodies = st.binary(max_size=2_000)
skews = st.integers(min_value=-DEFAULT_TOLERANCE_S, max_value=DEFAULT_TOLERANCE_S)


@given(secret=secrets, timestamp=timestamps, body=bodies, skew=skews)
def test_verify_accepts_what_sign_made_within_the_tolerance(
    secret: str, timestamp: int, body: bytes, skew: int
) -> None:
    assert verify(secret, sign(secret, timestamp, body), body, now_s=timestamp + skew)


@given(secret=secrets, timestamp=timestamps, body=bodies, other=bodies)
def test_verify_rejects_a_changed_body(
    secret: str, timestamp: int, body: bytes, other: bytes
) -> None:
    assume(other != body)
    assert not verify(secret, sign(secret, timestamp, body), other, now_s=timestamp)


@given(secret=secrets, timestamp=timestamps, body=bodies, other=timestamps)
def test_verify_rejects_a_changed_timestamp(
    secret: str, timestamp: int, body: bytes, other: int
) -> None:
    assume(other != timestamp)
    digest = sign(secret, timestamp, body).split(",")[1]
    assert not verify(secret, f"t={other},{digest}", body, now_s=other)


@given(secret=secrets, other=secrets, timestamp=timestamps, body=bodies)
def test_verify_rejects_another_secret(
    secret: str, other: str, timestamp: int, body: bytes
) -> None:
    assume(other != secret)
    assert not verify(other, sign(secret, timestamp, body), body, now_s=timestamp)


@given(
    secret=secrets,
    timestamp=timestamps,
    body=bodies,
    late_s=st.integers(min_value=DEFAULT_TOLERANCE_S + 1, max_value=10**9),
)
def test_verify_rejects_a_signature_older_than_the_tolerance(
    secret: str, timestamp: int, body: bytes, late_s: int
) -> None:
    assert not verify(secret, sign(secret, timestamp, body), body, now_s=timestamp + late_s)


def test_verify_rejects_a_timestamp_far_in_the_future() -> None:
    header = sign("secret", 10_000, b"{}")
    assert not verify("secret", header, b"{}", now_s=10_000 - DEFAULT_TOLERANCE_S - 1)


def test_the_tolerance_is_the_receivers_choice() -> None:
    header = sign("secret", 1_000, b"{}")
    assert not verify("secret", header, b"{}", now_s=1_061, tolerance_s=60)
    assert verify("secret", header, b"{}", now_s=1_061, tolerance_s=3_600)


def test_the_header_is_a_timestamp_and_the_hex_hmac_of_timestamp_dot_body() -> None:
    expected = hmac.new(b"secret", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert sign("secret", 1_700_000_000, b"{}") == f"t=1700000000,v1={expected}"


def test_verify_accepts_any_matching_signature_so_secrets_can_rotate() -> None:
    old = sign("old-secret", 1_000, b"{}").split(",")[1]
    header = f"{sign('new-secret', 1_000, b'{}')},{old}"
    assert verify("old-secret", header, b"{}", now_s=1_000)
    assert verify("new-secret", header, b"{}", now_s=1_000)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "t=1000",
        "v1=abc",
        "t=,v1=abc",
        "t=-1000,v1=abc",
        "t=+1000,v1=abc",
        "t=1_000,v1=abc",
        "t=\uff11\uff10\uff10\uff10,v1=abc",  # fullwidth digits, which str.isdigit accepts
        "t=1000,t=1000,v1=abc",
        "t=1000;v1=abc",
        "t=1000,v1=é",
    ],
)
def test_verify_rejects_a_malformed_header(header: str) -> None:
    assert not verify("secret", header, b"{}", now_s=1_000)


def test_a_malformed_header_keeps_no_valid_signature_alive() -> None:
    valid = sign("secret", 1_000, b"{}")
    assert not verify("secret", f"{valid},junk", b"{}", now_s=1_000)


def test_verify_rejects_everything_with_an_empty_secret() -> None:
    assert not verify("", sign("secret", 1_000, b"{}"), b"{}", now_s=1_000)


@pytest.mark.parametrize(("secret", "timestamp"), [("", 1_000), ("secret", -1)])
def test_sign_refuses_an_empty_secret_or_a_negative_timestamp(secret: str, timestamp: int) -> None:
    with pytest.raises(ValueError, match="must"):
        sign(secret, timestamp, b"{}")
