"""Signatures of outgoing callbacks: HMAC-SHA256 over a timestamp and the body, Stripe-style.

The header reads `t=<unix seconds>,v1=<hex digest>`. Signing the timestamp with the body lets a
receiver reject a captured request replayed later; `verify` is what a receiver runs.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Conduit-Signature"
SIGNATURE_SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300


def _digest(secret: str, timestamp_s: int, body: bytes) -> str:
    signed = f"{timestamp_s}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def sign(secret: str, timestamp_s: int, body: bytes) -> str:
    """The signature header's value for `body` sent at `timestamp_s` (Unix seconds)."""
    if not secret:
        raise ValueError("a signing secret must not be empty")
    if timestamp_s < 0:
        raise ValueError("a signature's timestamp must be >= 0")
    return f"t={timestamp_s},{SIGNATURE_SCHEME}={_digest(secret, timestamp_s, body)}"


def verify(
    secret: str,
    header: str,
    body: bytes,
    now_s: int,
    tolerance_s: int = DEFAULT_TOLERANCE_S,
) -> bool:
    """Whether `header` signs `body` with `secret` at a time within `tolerance_s` of `now_s`.

    Several `v1=` entries are allowed, so that a sender can sign with an old and a new secret
    while the secret is rotated; one match is enough.
    """
    if not secret:
        return False
    timestamps: list[str] = []
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            return False
        if key == "t":
            timestamps.append(value)
        elif key == SIGNATURE_SCHEME:
            candidates.append(value)
    # int() would also take "+5", " 5" and "5_0"; only plain ASCII digits are a timestamp.
    if len(timestamps) != 1 or not (timestamps[0].isascii() and timestamps[0].isdigit()):
        return False
    timestamp_s = int(timestamps[0])
    if abs(now_s - timestamp_s) > tolerance_s:
        return False
    expected = _digest(secret, timestamp_s, body).encode()
    # Every candidate is compared, so the time taken does not say which one matched.
    matches = [hmac.compare_digest(expected, candidate.encode()) for candidate in candidates]
    return any(matches)
