"""`python -m gateway`: the REST API on :8000."""

from __future__ import annotations

import asyncio

import uvicorn

from gateway.app import Settings, create_app
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
    """Read the environment, build the app and serve until SIGTERM."""
    settings = Settings(
        redis=from_env(RedisSettings),
        queues=from_env(QueueSettings),
        jwt=from_env(JwtSettings),
    )
    http = from_env(HttpSettings, defaults={"HTTP_PORT": "8000"})
    configure_logging("gateway", from_env(LogSettings).level)
    config = uvicorn.Config(
        create_app(settings), host=http.host, port=http.port, log_config=None, lifespan="on"
    )
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
