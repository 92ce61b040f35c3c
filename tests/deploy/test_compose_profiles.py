"""The compose profiles `otel` and `grafana`: the collector, Grafana and its dashboard agree with
the compose file, the settings the services read, and the metrics the services export."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import litestar.plugins.prometheus.middleware as litestar_metrics
import pytest

from shared.telemetry import configure_tracing
from tests.deploy.composefile import COMPOSE_FILE, ENV_EXAMPLE, ROOT, compose_services, load_yaml

DEPLOY = ROOT / "deploy"
COLLECTOR_CONFIG = DEPLOY / "otel-collector.yaml"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "conduit.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources" / "prometheus.yaml"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards" / "conduit.yaml"
ALERTS = DEPLOY / "alerts.yml"
APP_SERVICES = ("gateway", "worker", "notifier", "health")
# The components of the core distribution (otel/opentelemetry-collector), from its manifest in
# open-telemetry/opentelemetry-collector-releases (distributions/otelcol/manifest.yaml).
CORE_COLLECTOR = {
    "receivers": {"nop", "otlp", "hostmetrics", "jaeger", "kafka", "prometheus", "zipkin"},
    "processors": {
        "batch",
        "memory_limiter",
        "attributes",
        "resource",
        "span",
        "probabilistic_sampler",
        "filter",
    },
    "exporters": {
        "debug",
        "nop",
        "otlp",
        "otlphttp",
        "file",
        "kafka",
        "prometheus",
        "prometheusremotewrite",
        "zipkin",
    },
    "extensions": {"zpages", "health_check", "pprof"},
}
# What a PromQL expression names besides metrics.
PROMQL_WORDS = re.compile(r"\b(conduit_[a-z0-9_]+)\b")
# The exposition adds these to a metric's registered name (counters, histograms).
SAMPLE_SUFFIXES = ("_bucket", "_sum", "_count", "_total")


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """{container path: host path} of a service's volumes, short ("src:dst:ro") or long form."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            mounts[volume["target"]] = volume["source"]
        else:
            source, target = volume.split(":")[:2]
            mounts[target] = source
    return mounts


def published(port: str | dict[str, Any]) -> tuple[str, int, int]:
    """(host ip, host port, container port), in short ("127.0.0.1:3000:3000/tcp") or long form."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), int(port["published"]), int(port["target"])
    host_ip, host_port, target = port.split("/")[0].rsplit(":", 2)
    return host_ip, int(host_port), int(target)


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_targets() -> list[dict[str, Any]]:
    return [target for panel in dashboard()["panels"] for target in panel["targets"]]


def base_name(metric: str) -> str:
    """A metric's name without the suffixes the exposition adds."""
    for suffix in SAMPLE_SUFFIXES:
        if metric.endswith(suffix):
            return metric.removesuffix(suffix)
    return metric


def exported_metrics() -> set[str]:
    """The base names of every metric the services register, found in their code.

    Conduit's own metrics are string literals named `conduit_*`; Litestar's request metrics
    are its middleware's names under each `PrometheusConfig(prefix=...)`.
    """
    code = "\n".join(
        path.read_text()
        for folder in (ROOT / "services", ROOT / "shared")
        for path in folder.rglob("*.py")
    )
    names = set(re.findall(r"[\"'](conduit_[a-z0-9_]+)[\"']", code))
    middleware = Path(litestar_metrics.__file__).read_text()
    request_metrics = re.findall(r'f"\{self\._config\.prefix\}(_[a-z_]+)"', middleware)
    assert "_requests_total" in request_metrics
    for prefix in re.findall(r"prefix=\"(conduit_[a-z0-9_]+)\"", code):
        # A prefix names no metric of its own.
        names.discard(prefix)
        names.update(f"{prefix}{suffix}" for suffix in request_metrics)
    return {base_name(name) for name in names}


def queried_metrics(expressions: Iterable[str]) -> set[str]:
    return {base_name(name) for expr in expressions for name in PROMQL_WORDS.findall(expr)}


@pytest.fixture(scope="module")
def empty_env_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compose-profiles") / "empty.env"
    path.write_text("")
    return path


@pytest.fixture(scope="module")
def profiled(empty_env_file: Path) -> dict[str, Any]:
    """The services with both profiles on, and the collector as the OTLP endpoint."""
    return compose_services(
        empty_env_file,
        "otel",
        "grafana",
        env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318"},
    )


def test_each_profile_adds_its_service_and_nothing_runs_only_with_it(
    profiled: dict[str, Any],
) -> None:
    profiles = {name: service.get("profiles") for name, service in profiled.items()}
    assert profiles["otel-collector"] == ["otel"]
    assert profiles["grafana"] == ["grafana"]
    # No service of the default set waits for a profile's service.
    for name, service in profiled.items():
        if "profiles" not in service:
            assert not set(service.get("depends_on", {})) & {"otel-collector", "grafana"}, name


def test_services_export_no_spans_unless_an_endpoint_is_given(
    profiled: dict[str, Any], empty_env_file: Path
) -> None:
    default = compose_services(empty_env_file)
    for name in APP_SERVICES:
        assert default[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "", name
        endpoint = profiled[name]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint == "http://otel-collector:4318", name
    # An empty endpoint is no endpoint: no provider is installed, nothing is exported.
    assert configure_tracing("gateway", {"OTEL_EXPORTER_OTLP_ENDPOINT": ""}) is False
    assert configure_tracing("gateway", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}) is False


def test_env_example_leaves_export_off_and_names_the_collectors_receiver() -> None:
    text = ENV_EXAMPLE.read_text()
    assert re.search(r"^OTEL_EXPORTER_OTLP_ENDPOINT=$", text, re.MULTILINE)
    (documented,) = re.findall(r"http://otel-collector:\d+", text)
    receiver = load_yaml(COLLECTOR_CONFIG.read_text())["receivers"]["otlp"]["protocols"]["http"]
    assert urlsplit(documented).port == urlsplit(f"http://{receiver['endpoint']}").port == 4318


def test_the_collector_runs_its_config_with_core_components_only(
    profiled: dict[str, Any],
) -> None:
    collector = profiled["otel-collector"]
    assert collector["image"].startswith("otel/opentelemetry-collector:")
    (config_path,) = [
        arg.removeprefix("--config=") for arg in collector["command"] if arg.startswith("--config=")
    ]
    assert bind_mounts(collector)[config_path] == str(COLLECTOR_CONFIG)
    config = load_yaml(COLLECTOR_CONFIG.read_text())
    for kind, available in CORE_COLLECTOR.items():
        defined = {name.split("/")[0] for name in config.get(kind) or {}}
        assert defined <= available, (kind, defined - available)
    (pipeline,) = config["service"]["pipelines"].items()
    name, stages = pipeline
    assert name == "traces"
    for kind in ("receivers", "processors", "exporters"):
        # Every stage names a component the config defines.
        assert set(stages[kind]) <= set(config[kind]), kind
    assert stages["receivers"] == ["otlp"]


def test_grafana_is_provisioned_with_the_compose_prometheus_and_the_dashboard(
    profiled: dict[str, Any],
) -> None:
    grafana = profiled["grafana"]
    assert grafana["image"].startswith("grafana/grafana:")
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == str(GRAFANA / "provisioning")
    (datasource,) = load_yaml(DATASOURCES.read_text())["datasources"]
    url = urlsplit(datasource["url"])
    assert url.hostname == "prometheus"
    assert url.port in {published(port)[2] for port in profiled["prometheus"]["ports"]}
    (provider,) = load_yaml(DASHBOARD_PROVIDERS.read_text())["providers"]
    assert mounts[provider["options"]["path"]] == str(DASHBOARD.parent)
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/{DASHBOARD.name}"
    # Every panel and query reads that data source.
    uids = {panel["datasource"]["uid"] for panel in dashboard()["panels"]}
    uids |= {target["datasource"]["uid"] for target in dashboard_targets()}
    assert uids == {datasource["uid"]}


def test_grafana_is_published_on_the_loopback_only_and_keeps_no_password_default(
    profiled: dict[str, Any], empty_env_file: Path
) -> None:
    assert [published(port) for port in profiled["grafana"]["ports"]] == [("127.0.0.1", 3000, 3000)]
    text = COMPOSE_FILE.read_text()
    assert "${GRAFANA_ADMIN_PASSWORD:-}" in text
    given = compose_services(empty_env_file, "grafana", env={"GRAFANA_ADMIN_PASSWORD": "chosen"})
    assert given["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "chosen"


def test_dashboard_panels_are_well_formed() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    panels = board["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["title"], panel["id"]
        assert panel["targets"], panel["id"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["id"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["id"]
        assert all(target["expr"].strip() for target in panel["targets"]), panel["id"]


def test_dashboard_shows_the_key_metrics() -> None:
    queried = queried_metrics(target["expr"] for target in dashboard_targets())
    assert {
        # Jobs per second by state.
        "conduit_jobs_enqueued",
        "conduit_jobs_started",
        "conduit_jobs_completed",
        "conduit_jobs_failed",
        "conduit_jobs_dead_lettered",
        # Queue depth, lag and the oldest pending job.
        "conduit_queue_depth",
        "conduit_queue_lag",
        "conduit_queue_oldest_pending_age_seconds",
        # Job duration p95.
        "conduit_job_duration_seconds",
        # WebSocket connections, messages sent and connections dropped.
        "conduit_notifier_connections",
        "conduit_notifier_messages_sent",
        "conduit_notifier_connections_dropped",
        # The gateway's 5xx rate.
        "conduit_gateway_requests",
    } <= queried
    assert any(
        "histogram_quantile(0.95" in target["expr"]
        and "conduit_job_duration_seconds_bucket" in target["expr"]
        for target in dashboard_targets()
    )
    assert any('status_code=~"5.."' in target["expr"] for target in dashboard_targets())


def test_every_metric_the_dashboard_queries_is_exported_by_a_service() -> None:
    queried = queried_metrics(target["expr"] for target in dashboard_targets())
    variables = [variable["definition"] for variable in dashboard()["templating"]["list"]]
    queried |= queried_metrics(variables)
    assert queried
    assert queried <= exported_metrics(), queried - exported_metrics()


def test_every_metric_the_alert_rules_query_is_exported_by_a_service() -> None:
    rules = [rule for group in load_yaml(ALERTS.read_text())["groups"] for rule in group["rules"]]
    queried = queried_metrics(rule["expr"] for rule in rules)
    assert queried
    assert queried <= exported_metrics(), queried - exported_metrics()


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run `bash deploy/install-system-packages.sh` as root")
    # As recording rules, so that promtool parses every expression; Grafana's variables become
    # what they stand for.
    rules = [
        {
            "record": f"dashboard:panel{index}",
            "expr": target["expr"].replace("$__rate_interval", "1m").replace('"$queue"', '".*"'),
        }
        for index, target in enumerate(dashboard_targets())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    completed = subprocess.run(
        [promtool, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert f"{len(rules)} rules found" in completed.stdout
