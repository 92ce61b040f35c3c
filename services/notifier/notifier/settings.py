"""The notifier's own settings (`NOTIFIER_*`); Redis, JWT, HTTP and queues come from shared."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from shared.settings import SettingsError


class NotifierSettings(msgspec.Struct, frozen=True, kw_only=True):
    """Limits of reading the events streams and of writing to clients, each a named setting."""

    env_prefix: ClassVar[str] = "NOTIFIER_"

    # XREAD BLOCK per call; short enough that a silent network drop is noticed.
    read_block_ms: int = 5_000
    # Entries per XREAD; a batch is fanned out without yielding, so this bounds that stretch.
    read_count: int = 100
    retry_min_ms: int = 100
    retry_max_ms: int = 5_000
    close_timeout_ms: int = 1_000
    # Frames waiting for one client, while its socket takes no more or while it catches up: past
    # either bound it is closed 4408 as slow (it may come back with its offsets and catch up).
    # Memory per client stays under this plus the transport's own 64 KiB high-water mark.
    send_buffer_messages: int = 1_000
    send_buffer_bytes: int = 1_048_576
    # Catch-up: entries read per XRANGE, and the most a client may have missed before it is told
    # to resync instead.
    catch_up_page_size: int = 500
    catch_up_max_entries: int = 10_000
    # A client that connects without `?token=` must send its `auth` message within this.
    auth_timeout_ms: int = 3_000
    # WebSocket pings (uvicorn's): one every interval; a peer that has not answered within the
    # timeout is dropped. 0 turns either off.
    ping_interval_ms: int = 20_000
    ping_timeout_ms: int = 20_000
    # On shutdown each client is told to come back after a random delay within this window.
    restart_window_ms: int = 5_000
    # Handshakes admitted per second on average, and at once; over it a client is closed 1013
    # with the time to retry after.
    admit_rate_per_s: float = 500.0
    admit_burst: int = 1_000
    # Stored notifications: how long an entry read by an instance may stay unstored before
    # another instance claims it (a dead instance's), and how long one insert may take.
    persist_claim_idle_ms: int = 30_000
    persist_timeout_ms: int = 5_000
    # Browser origins (`scheme://host[:port]`) allowed to open a socket; clients that send no
    # Origin (not browsers) are always allowed.
    allowed_origins: tuple[str, ...] = ()
    # How long before its access token runs out a client is told to send a fresh one.
    token_warn_s: int = 60
    # How long a connection stays present after its instance last renewed it (a crashed one's).
    presence_ttl_ms: int = 30_000
    # How often joins and leaves are written to the presence sets, batched.
    presence_flush_ms: int = 200
    # Entity rooms one connection may be in at once.
    max_entity_rooms: int = 100
    # The largest message a client may send; its messages are small commands (a token, a room).
    max_message_bytes: int = 4_096
    redis_timeout_ms: int = 2_000
    # Redis connections of one notifier; a command waits up to redis_timeout_ms for a free one.
    redis_max_connections: int = 50

    def __post_init__(self) -> None:
        self._check_clients()
        if self.read_block_ms < 1 or self.read_count < 1:
            raise SettingsError("NOTIFIER_READ_BLOCK_MS and NOTIFIER_READ_COUNT must be positive")
        if not 0 < self.retry_min_ms <= self.retry_max_ms:
            raise SettingsError("need 0 < NOTIFIER_RETRY_MIN_MS <= NOTIFIER_RETRY_MAX_MS")
        if self.redis_max_connections < 4:
            raise SettingsError("NOTIFIER_REDIS_MAX_CONNECTIONS must be at least 4")
        if self.persist_claim_idle_ms < 1 or self.persist_timeout_ms < 1:
            raise SettingsError("NOTIFIER_PERSIST_* must be positive")
        if self.presence_ttl_ms < 300 or self.presence_flush_ms < 1:
            raise SettingsError("need NOTIFIER_PRESENCE_TTL_MS >= 300, _FLUSH_MS >= 1")
        if self.max_entity_rooms < 0:
            raise SettingsError("NOTIFIER_MAX_ENTITY_ROOMS must not be negative")
        if self.token_warn_s < 0:
            raise SettingsError("NOTIFIER_TOKEN_WARN_S must not be negative")
        if self.max_message_bytes < 256:
            raise SettingsError("NOTIFIER_MAX_MESSAGE_BYTES must be at least 256")

    def _check_clients(self) -> None:
        """The limits of serving clients: timeouts, send buffers, keepalive and admission."""
        if min(self.close_timeout_ms, self.ping_interval_ms, self.ping_timeout_ms) < 0:
            raise SettingsError("NOTIFIER_*_TIMEOUT_MS and _INTERVAL_MS must not be negative")
        if self.redis_timeout_ms < 1 or self.auth_timeout_ms < 1:
            raise SettingsError("NOTIFIER_REDIS_TIMEOUT_MS and _AUTH_TIMEOUT_MS must be positive")
        if min(self.catch_up_page_size, self.catch_up_max_entries) < 1:
            raise SettingsError("NOTIFIER_CATCH_UP_* must be positive")
        if self.send_buffer_messages < 1 or self.send_buffer_bytes < 1_024:
            raise SettingsError(
                "need NOTIFIER_SEND_BUFFER_MESSAGES >= 1 and NOTIFIER_SEND_BUFFER_BYTES >= 1024"
            )
        if self.restart_window_ms < 0:
            raise SettingsError("NOTIFIER_RESTART_WINDOW_MS must not be negative")
        if not (self.admit_rate_per_s > 0 and self.admit_burst >= 1):
            raise SettingsError("need NOTIFIER_ADMIT_RATE_PER_S > 0 and NOTIFIER_ADMIT_BURST >= 1")
