"""Settings come from the environment, validated, with a clear error naming what is wrong."""

from __future__ import annotations

import pytest

from shared.jobstore import StoreSettings
from shared.settings import (
    HttpSettings,
    JwtSettings,
    QueueSettings,
    RedisSettings,
    SettingsError,
    from_env,
)


def test_fields_read_their_prefixed_variable_and_convert_types() -> None:
    http = from_env(HttpSettings, {"HTTP_HOST": "0.0.0.0", "HTTP_PORT": "9000"})
    assert http == HttpSettings(host="0.0.0.0", port=9000)


def test_a_service_default_yields_to_the_environment() -> None:
    assert from_env(HttpSettings, {}, defaults={"HTTP_PORT": "8001"}).port == 8001
    assert from_env(HttpSettings, {"HTTP_PORT": "9"}, defaults={"HTTP_PORT": "8001"}).port == 9


def test_queue_names_are_comma_separated_and_the_first_is_the_default() -> None:
    queues = from_env(QueueSettings, {"QUEUE_NAMES": "emails, reports"})
    assert queues.names == ("emails", "reports")
    assert queues.default == "emails"


@pytest.mark.parametrize(
    ("kind", "env", "says"),
    [
        (JwtSettings, {}, "secret"),
        (JwtSettings, {"JWT_SECRET": "short"}, "at least 32"),
        (HttpSettings, {"HTTP_PORT": "eighty"}, "port"),
        (QueueSettings, {"QUEUE_NAMES": "a b"}, "queue name"),
    ],
)
def test_a_bad_environment_is_refused_with_the_reason(
    kind: type[JwtSettings | HttpSettings | QueueSettings], env: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError, match=says):
        from_env(kind, env)


def test_job_retention_reads_jobs_variables_and_refuses_nonsense() -> None:
    jobs = from_env(StoreSettings, {"JOBS_COMPLETED_TTL_S": "60", "JOBS_EVENTS_MAXLEN": "1000"})
    assert (jobs.completed_ttl_s, jobs.events_maxlen, jobs.failed_ttl_s) == (60, 1000, 604_800)
    with pytest.raises(SettingsError, match="completed_ttl_s"):
        from_env(StoreSettings, {"JOBS_COMPLETED_TTL_S": "0"})


def test_sentinels_are_host_port_pairs_with_a_master_name_and_their_own_password() -> None:
    redis = from_env(
        RedisSettings,
        {
            "REDIS_URL": "redis://:data@ignored:6379/2",
            "REDIS_SENTINELS": "10.0.0.1:26379, sentinel-b:26380,[::1]:26381",
            "REDIS_SENTINEL_PASSWORD": "watch",
        },
    )
    assert redis.sentinel_addresses == (
        ("10.0.0.1", 26379),
        ("sentinel-b", 26380),
        ("::1", 26381),
    )
    assert (redis.sentinel_master, redis.sentinel_password) == ("mymaster", "watch")
    assert from_env(RedisSettings, {}).sentinels == ()


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"REDIS_SENTINELS": "a:1", "REDIS_CLUSTER": "true"}, "exclude each other"),
        ({"REDIS_SENTINELS": "sentinel-a"}, "'sentinel-a' is not host:port"),
        ({"REDIS_SENTINELS": "a:26379,b:port"}, "'b:port' is not host:port"),
        ({"REDIS_SENTINELS": ":26379"}, "is not host:port"),
        ({"REDIS_SENTINELS": "a:70000"}, "is not host:port"),
        ({"REDIS_SENTINELS": "a:1", "REDIS_SENTINEL_MASTER": ""}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINELS": "a:1", "REDIS_URL": "unix:///tmp/redis.sock"}, "redis://"),
    ],
)
def test_a_bad_sentinel_setting_is_refused_with_the_reason(env: dict[str, str], says: str) -> None:
    with pytest.raises(SettingsError, match=says):
        from_env(RedisSettings, env)
