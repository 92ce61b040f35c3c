"""`python -m notifier`: serve the notifier on HTTP_HOST:HTTP_PORT (8001 by default)."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from notifier.app import create_app
from notifier.auth import TokenRedactingFilter
from notifier.settings import NotifierSettings
from shared.logging import configure_logging
from shared.settings import (
    HttpSettings,
    JwtSettings,
    LogSettings,
    QueueSettings,
    RedisSettings,
    from_env,
)


def main() -> None:
    """Read the settings, then serve until SIGTERM or SIGINT."""
    http = from_env(HttpSettings, defaults={"HTTP_PORT": "8001"})
    configure_logging("notifier", from_env(LogSettings).level)
    for handler in logging.getLogger().handlers:
        handler.addFilter(TokenRedactingFilter())
    app = create_app(
        redis=from_env(RedisSettings),
        jwt=from_env(JwtSettings),
        queues=from_env(QueueSettings),
        notifier=from_env(NotifierSettings),
    )
    config = uvicorn.Config(
        app,
        host=http.host,
        port=http.port,
        log_config=None,
        lifespan="on",
        # Compression runs once per connection and frame, undoing encode-once fan-out.
        ws_per_message_deflate=False,
    )
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
