"""`python -m worker`: consume jobs; probes and metrics on :8003."""

from __future__ import annotations

import asyncio

import uvicorn

from shared.logging import configure_logging
from shared.settings import HttpSettings, LogSettings, QueueSettings, RedisSettings, from_env
from worker.app import Settings, create_app
from worker.settings import WorkerSettings


def main() -> None:
    """Read the environment, build the app and serve until SIGTERM."""
    settings = Settings(
        redis=from_env(RedisSettings),
        queues=from_env(QueueSettings),
        worker=from_env(WorkerSettings),
    )
    http = from_env(HttpSettings, defaults={"HTTP_PORT": "8003"})
    configure_logging("worker", from_env(LogSettings).level)
    config = uvicorn.Config(
        create_app(settings),
        host=http.host,
        port=http.port,
        log_config=None,
        lifespan="on",
        # The broker's graceful stop runs inside the lifespan shutdown; give it its grace period.
        timeout_graceful_shutdown=int(settings.worker.grace_s) + 1,
    )
    asyncio.run(uvicorn.Server(config).serve())


if __name__ == "__main__":
    main()
