"""deploy/prometheus.yml and deploy/alerts.yml: valid for promtool, tested alert by alert, in line
with compose and the runbook, and scraping the running stack with the real Prometheus server."""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.ports import LOOPBACK, free_port
from devstack.services import SERVICES
from devstack.stack import Stack
from tests.deploy.composefile import compose_services

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CONFIG = DEPLOY / "prometheus.yml"
RULES = DEPLOY / "alerts.yml"
RULE_TESTS = DEPLOY / "alerts.test.yml"
RUNBOOK = ROOT / "docs" / "operations.md"
PORTS = {spec.name: spec.port for spec in SERVICES}
# Replicas of these are found by DNS, so that `--scale` adds scrape targets by itself.
SCALED = {"worker", "notifier"}


def binary(name: str) -> str:
    """A Prometheus binary; its absence fails the test, since `make install` provides it."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: run `bash deploy/install-system-packages.sh` as root")
    return path


def load_yaml(path: Path) -> dict[str, Any]:
    # PyYAML ships no type hints; it comes with litestar[standard] and uvicorn[standard].
    yaml = importlib.import_module("yaml")
    loaded: dict[str, Any] = yaml.safe_load(path.read_text())
    return loaded


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary("promtool"), *args], capture_output=True, text=True, timeout=60, check=False
    )


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_config_and_the_rule_files_it_names() -> None:
    completed = promtool("check", "config", str(CONFIG))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "1 rule files found" in completed.stdout


def test_promtool_accepts_the_alert_rules() -> None:
    completed = promtool("check", "rules", str(RULES))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "4 rules found" in completed.stdout


def test_each_alert_fires_and_stays_quiet_as_its_unit_tests_expect() -> None:
    completed = promtool("test", "rules", str(RULE_TESTS))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "SUCCESS" in completed.stdout


def test_the_four_alerts_are_each_unit_tested() -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert names == {"WorkerDown", "QueueLagHigh", "DeadLettersGrowing", "Gateway5xxRate"}
    tested = {
        case["alertname"]
        for test in load_yaml(RULE_TESTS)["tests"]
        for case in test["alert_rule_test"]
        if case.get("exp_alerts")
    }
    assert tested == names


def test_every_alert_links_to_a_section_of_the_runbook() -> None:
    # GitHub's anchors: headings lowercased, punctuation dropped, spaces to hyphens.
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^### (.+)$", RUNBOOK.read_text(), re.MULTILINE)
    }
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert annotations["summary"], rule["alert"]
        assert annotations["description"], rule["alert"]
        page, anchor = annotations["runbook_url"].split("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor in anchors, (rule["alert"], anchor, anchors)


def test_the_config_scrapes_every_compose_service_on_its_port() -> None:
    targets: dict[str, set[str]] = {}
    for job in load_yaml(CONFIG)["scrape_configs"]:
        found = targets.setdefault(job["job_name"], set())
        for static in job.get("static_configs", []):
            found.update(static["targets"])
        for dns in job.get("dns_sd_configs", []):
            assert dns["type"] == "A", job["job_name"]
            found.update(f"{name}:{dns['port']}" for name in dns["names"])
    assert targets == {name: {f"{name}:{port}"} for name, port in PORTS.items()}
    scaled = {
        job["job_name"] for job in load_yaml(CONFIG)["scrape_configs"] if "dns_sd_configs" in job
    }
    assert scaled == SCALED


def bind_mount(volume: str | dict[str, Any]) -> tuple[str, str]:
    """(target, source) of a volume, in short ("src:dst:ro") or long form."""
    if isinstance(volume, dict):
        return volume["target"], volume["source"]
    source, target = volume.split(":")[:2]
    return target, source


def published(port: str | dict[str, Any]) -> tuple[str, int, int]:
    """(host ip, host port, container port), in short ("127.0.0.1:9090:9090/tcp") or long form."""
    if isinstance(port, dict):
        return port.get("host_ip", ""), int(port["published"]), int(port["target"])
    host_ip, host_port, target = port.split("/")[0].rsplit(":", 2)
    return host_ip, int(host_port), int(target)


def test_compose_runs_prometheus_with_the_config_and_rules_on_the_loopback_only(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    prometheus = compose_services(env_file)["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:v")
    mounts = dict(bind_mount(volume) for volume in prometheus["volumes"])
    config_target = next(
        arg.split("=", 1)[1] for arg in prometheus["command"] if arg.startswith("--config.file=")
    )
    assert mounts[config_target] == str(CONFIG)
    # The config names its rule files relative to itself.
    for rule_file in load_yaml(CONFIG)["rule_files"]:
        assert mounts[str(Path(config_target).parent / rule_file)] == str(DEPLOY / rule_file)
    assert [published(port) for port in prometheus["ports"]] == [("127.0.0.1", 9090, 9090)]
    assert set(prometheus["depends_on"]) == set(PORTS)


def stack_config(stack: Stack, rules: Path) -> dict[str, Any]:
    """deploy/prometheus.yml with each job aimed at the stack's port, scraped every second."""
    config = load_yaml(CONFIG)
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(rules)]
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        port = stack.services[job["job_name"]].port
        job["static_configs"] = [{"targets": [f"{LOOPBACK}:{port}"]}]
    return config


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[str]:
    """The Debian Prometheus server scraping the stack; yields its base URL."""
    yaml = importlib.import_module("yaml")
    rules = tmp_path / "alerts.yml"
    shutil.copyfile(RULES, rules)
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(stack_config(stack, rules)))
    port = free_port()
    log_path = tmp_path / "prometheus.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address={LOOPBACK}:{port}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://{LOOPBACK}:{port}"
    try:
        with httpx.Client(base_url=base_url, timeout=2) as client:
            deadline = time.monotonic() + 20
            while True:
                assert process.poll() is None, log_path.read_text()[-3000:]
                try:
                    if client.get("/-/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()[-3000:]
                time.sleep(0.1)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def query(client: httpx.Client, promql: str) -> dict[str, float]:
    """An instant query's vector, as {job label (or ""): value}."""
    answer = client.get("/api/v1/query", params={"query": promql}).json()
    assert answer["status"] == "success", answer
    return {
        sample["metric"].get("job", ""): float(sample["value"][1])
        for sample in answer["data"]["result"]
    }


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_real_prometheus_scrapes_every_service_and_sees_a_job_through(
    stack: Stack, prometheus: str
) -> None:
    token = stack.token("prometheus-test")
    with httpx.Client(base_url=stack.gateway_url, timeout=5) as gateway:
        answer = gateway.post(
            "/v1/jobs",
            json={"type": "demo.echo", "payload": {"text": "scraped"}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert answer.status_code == 202, answer.text
    expected = {
        "up": dict.fromkeys(PORTS, 1.0),
        "sum by (job) (conduit_jobs_enqueued_total)": {"gateway": 1.0},
        "sum by (job) (conduit_jobs_completed_total)": {"worker": 1.0},
        "count by (job) (conduit_queue_lag)": {"health": 3.0},
    }
    seen: dict[str, dict[str, float]] = {}
    health: dict[str, str] = {}
    with httpx.Client(base_url=prometheus, timeout=5) as client:
        deadline = time.monotonic() + 30
        while True:
            seen = {promql: query(client, promql) for promql in expected}
            # The server loaded the alert rules and evaluates them against the scraped series.
            groups = client.get("/api/v1/rules").json()["data"]["groups"]
            health = {rule["name"]: rule["health"] for group in groups for rule in group["rules"]}
            if set(health.values()) == {"ok"} and all(
                set(seen[promql]) == set(floor)
                and all(seen[promql][job] >= value for job, value in floor.items())
                for promql, floor in expected.items()
            ):
                break
            assert time.monotonic() < deadline, (seen, health)
            time.sleep(0.5)
    assert seen["up"] == dict.fromkeys(PORTS, 1.0)
    assert set(health) == {rule["alert"] for rule in alert_rules()}
