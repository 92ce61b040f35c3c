"""`python -m notifier`: serve the notifier on HTTP_HOST:HTTP_PORT (8001 by default)."""

from __future__ import annotations

from notifier.app import create_app
from notifier.settings import NotifierSettings
from shared.serving import serve
from shared.settings import JwtSettings, QueueSettings, RedisSettings, from_env


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    serve(
        "notifier",
        8001,
        lambda: create_app(
            redis=from_env(RedisSettings),
            jwt=from_env(JwtSettings),
            queues=from_env(QueueSettings),
            notifier=from_env(NotifierSettings),
        ),
        # Compression runs once per connection and frame, undoing encode-once fan-out.
        ws_per_message_deflate=False,
    )


if __name__ == "__main__":
    main()
