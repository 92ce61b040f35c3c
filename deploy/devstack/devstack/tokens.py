"""Access tokens as Conduit's services expect them: HS256 JWTs with `sub`, `role`, `exp`."""

from __future__ import annotations

import time
from typing import Protocol

import jwt


def mint_token(secret: str, sub: str, role: str = "USER", ttl_s: int = 3600) -> str:
    """A JWT for `sub` with `role`, signed with `secret`, valid for `ttl_s` seconds from now."""
    now = int(time.time())
    claims = {"sub": sub, "role": role, "iat": now, "exp": now + ttl_s}
    return jwt.encode(claims, secret, algorithm="HS256")


class TokenFactory(Protocol):
    """Mints a token with a fixed secret: the `make_token` test fixture."""

    def __call__(self, sub: str, role: str = "USER", ttl_s: int = 3600) -> str:
        """A JWT for `sub` with `role`, valid for `ttl_s` seconds."""
        ...
