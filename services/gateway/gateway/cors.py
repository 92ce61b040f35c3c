"""Which browser frontends on other origins may call the API, through Litestar's CORS support."""

from __future__ import annotations

from litestar.config.cors import CORSConfig

# Answers a frontend's script must read: where a new job is, when to retry, a replayed POST.
EXPOSED_HEADERS = ("Location", "Retry-After", "Idempotent-Replayed")


def cors_config(origins: tuple[str, ...]) -> CORSConfig | None:
    """CORS for the allow-listed origins only; none at all when the list is empty.

    Callers authenticate with a bearer token, never a cookie, so credentials stay off; any
    request header and method may be asked for, since the token, not CORS, guards each route.
    """
    if not origins:
        return None
    return CORSConfig(
        allow_origins=list(origins),
        allow_credentials=False,
        expose_headers=list(EXPOSED_HEADERS),
    )
