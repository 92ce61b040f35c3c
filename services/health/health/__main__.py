"""`python -m health`: the aggregate health document on :8002."""

from __future__ import annotations

from health.app import SERVICE, create_app
from health.settings import HealthSettings
from shared.serving import serve
from shared.settings import DatabaseSettings, QueueSettings, RedisSettings, from_env


def main() -> None:
    """Serve until SIGTERM."""
    serve(
        SERVICE,
        8002,
        lambda: create_app(
            from_env(HealthSettings),
            from_env(RedisSettings),
            from_env(DatabaseSettings),
            from_env(QueueSettings),
        ),
    )


if __name__ == "__main__":
    main()
