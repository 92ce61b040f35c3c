"""`python -m gateway`: the REST API on :8000."""

from __future__ import annotations

from gateway.app import Settings, create_app
from gateway.console.settings import ConsoleSettings
from gateway.settings import GatewaySettings
from shared.jobstore import StoreSettings
from shared.serving import serve
from shared.settings import (
    DatabaseSettings,
    JwtSettings,
    QueueSettings,
    RedisSettings,
    from_env,
)


def main() -> None:
    """Serve the gateway until SIGTERM."""
    serve(
        "gateway",
        8000,
        lambda: create_app(
            Settings(
                redis=from_env(RedisSettings),
                database=from_env(DatabaseSettings),
                queues=from_env(QueueSettings),
                jwt=from_env(JwtSettings),
                jobs=from_env(StoreSettings),
                gateway=from_env(GatewaySettings),
                console=from_env(ConsoleSettings),
            )
        ),
    )


if __name__ == "__main__":
    main()
