"""The console's settings (`CONSOLE_*`): dev sign-in, and where browsers and the gateway find the
notifier and the health service."""

from __future__ import annotations

import re
from typing import ClassVar

import msgspec

from shared.settings import SettingsError

_WS_URL = re.compile(r"wss?://[^/\s?#]+(/\S*)?")
_HTTP_URL = re.compile(r"https?://[^/\s?#]+")


class ConsoleSettings(msgspec.Struct, frozen=True, kw_only=True):
    """How the console reaches the rest of Conduit, and whether anyone may sign in as anyone."""

    env_prefix: ClassVar[str] = "CONSOLE_"

    # Lets `POST /console/api/dev-token` mint a token for any user and role, signed with the
    # gateway's JWT secret: only for a local demo stack (the devstack turns it on), never where
    # anyone but the developer reaches the gateway. Off, the route does not exist.
    dev_sign_in: bool = False
    # The notifier's WebSocket as browsers reach it (`wss://host/ws`); empty: the page's own
    # host on port 8001, as `make run` and docker compose serve it.
    notifier_url: str = ""
    # The health service as the gateway reaches it: the health document has no CORS headers,
    # so the console reads it through the gateway (`GET /console/api/health`).
    health_url: str = "http://127.0.0.1:8002"
    health_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.notifier_url and not _WS_URL.fullmatch(self.notifier_url):
            raise SettingsError(
                f"CONSOLE_NOTIFIER_URL: {self.notifier_url!r} is not a ws:// or wss:// URL"
            )
        if not _HTTP_URL.fullmatch(self.health_url.rstrip("/")):
            raise SettingsError(
                f"CONSOLE_HEALTH_URL: {self.health_url!r} is not an origin like http://host:port"
            )
        if not 0 < self.health_timeout_s <= 60:
            raise SettingsError("CONSOLE_HEALTH_TIMEOUT_S must be above 0 and at most 60")
