"""`python -m worker`: consume jobs; probes and metrics on :8003."""

from __future__ import annotations

import os

from shared.jobstore import StoreSettings
from shared.serving import serve
from shared.settings import (
    DatabaseSettings,
    QueueSettings,
    RedisSettings,
    SettingsError,
    from_env,
)
from worker.app import Settings, create_app
from worker.settings import WorkerSettings


def main() -> None:
    """Consume until SIGTERM, then finish the jobs in hand within the grace period."""
    try:
        worker = from_env(WorkerSettings)
    except SettingsError as exc:
        raise SystemExit(f"worker: {exc}") from exc
    serve(
        "worker",
        8003,
        lambda: create_app(
            Settings(
                redis=from_env(RedisSettings),
                queues=from_env(QueueSettings),
                worker=worker,
                jobs=from_env(StoreSettings),
                # Runtime settings are followed where PostgreSQL is given; else the env rules.
                database=from_env(DatabaseSettings) if "DATABASE_URL" in os.environ else None,
            )
        ),
        # The broker's graceful stop runs inside the lifespan shutdown; give it its grace period.
        timeout_graceful_shutdown=int(worker.grace_s) + 1,
    )


if __name__ == "__main__":
    main()
