"""`python -m health`: read the settings, configure logging and serve until SIGTERM."""

from __future__ import annotations

import asyncio

import uvicorn

from health.app import SERVICE, create_app
from health.settings import HealthSettings
from shared.logging import configure_logging
from shared.settings import (
    DatabaseSettings,
    HttpSettings,
    LogSettings,
    RedisSettings,
    SettingsError,
    from_env,
)


def main() -> None:
    """Serve the health service on HTTP_HOST:HTTP_PORT (8002 unless set)."""
    try:
        http = from_env(HttpSettings, defaults={"HTTP_PORT": "8002"})
        log = from_env(LogSettings)
        app = create_app(
            from_env(HealthSettings), from_env(RedisSettings), from_env(DatabaseSettings)
        )
    except SettingsError as exc:
        raise SystemExit(f"{SERVICE}: {exc}") from exc
    configure_logging(SERVICE, log.level)
    config = uvicorn.Config(app, host=http.host, port=http.port, log_config=None, lifespan="on")
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
