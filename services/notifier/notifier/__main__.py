"""`python -m notifier`: serve the notifier on HTTP_HOST:HTTP_PORT (8001 by default)."""

from __future__ import annotations

import math

from notifier.app import create_app
from notifier.settings import NotifierSettings
from notifier.wsprotocol import notifier_protocol
from shared.serving import serve
from shared.settings import (
    DatabaseSettings,
    JwtSettings,
    QueueSettings,
    RedisSettings,
    SettingsError,
    from_env,
)


def main() -> None:
    """Serve until SIGTERM or SIGINT."""
    try:
        notifier = from_env(NotifierSettings)
    except SettingsError as exc:
        raise SystemExit(f"notifier: {exc}") from exc
    serve(
        "notifier",
        8001,
        lambda: create_app(
            redis=from_env(RedisSettings),
            jwt=from_env(JwtSettings),
            queues=from_env(QueueSettings),
            notifier=notifier,
            database=from_env(DatabaseSettings),
        ),
        # Compression runs once per connection and frame, undoing encode-once fan-out.
        ws_per_message_deflate=False,
        # Refused while it is read, before a too-big message is held in memory whole.
        ws_max_size=notifier.max_message_bytes,
        # uvicorn's sans-I/O protocol, which pushes are written for, telling clients on
        # shutdown when to come back and cutting peers that stop answering pings.
        ws=notifier_protocol(notifier.restart_window_ms),
        # Pings by uvicorn; a peer that does not answer is dropped. None turns either off.
        ws_ping_interval=notifier.ping_interval_ms / 1000 or None,
        ws_ping_timeout=notifier.ping_timeout_ms / 1000 or None,
        # On shutdown a client that reads nothing would hold its socket's close open for ever.
        timeout_graceful_shutdown=math.ceil(notifier.close_timeout_ms / 1000) + 1,
    )


if __name__ == "__main__":
    main()
