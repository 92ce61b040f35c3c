"""The console's routes: the static pages, their configuration, and the health document.

The pages and `config` are public: they hold no data, and every API call the pages make carries
the signed-in user's bearer token, checked by the routes it calls like any other client's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import httpx
import msgspec
from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.handlers import HTTPRouteHandler
from litestar.router import Router
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from gateway.auth import admin_only
from gateway.console.devsignin import DEV_USERS, DevUser, dev_sign_in_route
from gateway.console.settings import ConsoleSettings
from gateway.problems import problem
from shared.settings import JwtSettings

STATIC_DIR: Final = Path(__file__).parent / "static"
HEALTH_MEDIA_TYPE: Final = "application/health+json"
# The answers of the health service the System page can render: all pass/warn, or a failure.
_HEALTH_STATUSES: Final = frozenset({200, 503})
_PUBLIC: Final = {"exclude_from_auth": True}


class ConsoleConfig(msgspec.Struct, frozen=True, kw_only=True):
    """What the pages need to know before anyone signs in."""

    dev_sign_in: bool
    dev_users: tuple[DevUser, ...]
    # Empty: the page's host on port 8001.
    notifier_url: str


def console_routes(settings: ConsoleSettings, jwt: JwtSettings) -> list[ControllerRouterHandler]:
    """Every console route; the dev sign-in one only when `settings.dev_sign_in` is on."""
    pages = _static_pages()
    config = ConsoleConfig(
        dev_sign_in=settings.dev_sign_in,
        dev_users=DEV_USERS if settings.dev_sign_in else (),
        notifier_url=settings.notifier_url,
    )

    @get("/console/api/config", include_in_schema=False, opt=_PUBLIC)
    async def console_config() -> ConsoleConfig:
        """How the pages sign in and reach the notifier."""
        return config

    routes: list[ControllerRouterHandler] = [pages, console_config, _health_route(settings)]
    if settings.dev_sign_in:
        routes.append(dev_sign_in_route(jwt))
    return routes


def _static_pages() -> Router:
    # Revalidated on every load (ETag), so a new gateway's pages are never mixed with old ones.
    return create_static_files_router(
        path="/console",
        directories=[STATIC_DIR],
        html_mode=True,
        name="console",
        opt=_PUBLIC,
        cache_control=CacheControlHeader(no_cache=True),
    )


def _health_route(settings: ConsoleSettings) -> HTTPRouteHandler:
    url = settings.health_url.rstrip("/") + "/health"

    @get("/console/api/health", guards=[admin_only], include_in_schema=False)
    async def health_document() -> Response[bytes]:
        """The health service's document, passed through with its 200 or 503; admins only."""
        # A client per call: the System page asks every few seconds at most, over loopback or
        # the local network, and nothing has to be closed at shutdown.
        try:
            async with httpx.AsyncClient(timeout=settings.health_timeout_s) as http:
                answer = await http.get(url)
        except httpx.HTTPError as exc:
            raise problem(
                502, f"the health service did not answer: {exc!r}", slug="health-unreachable"
            ) from exc
        if answer.status_code not in _HEALTH_STATUSES:
            raise problem(
                502,
                f"the health service answered {answer.status_code}",
                slug="health-unreachable",
            )
        return Response(
            answer.content, status_code=answer.status_code, media_type=HEALTH_MEDIA_TYPE
        )

    return health_document
