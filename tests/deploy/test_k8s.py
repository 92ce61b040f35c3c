"""deploy/k8s validates offline and agrees with the code it runs.

Built-in kinds are checked with kubernetes-validate against the JSON schemas of one pinned
Kubernetes version. No package on PyPI ships KEDA's CRD schemas (npm's @kubernetes-models/keda
ships them only as compiled JavaScript validators), so the KEDA objects are checked against
`KEDA_SCHEMAS` below: the fields we use, written down from KEDA's documented ScaledObject,
TriggerAuthentication and redis-streams scaler spec (keda.sh/docs, v2.11 to latest).
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from litestar import Litestar

from gateway.settings import DEFAULT_MAX_BODY_BYTES
from shared.contracts.jobs import PRIORITIES
from shared.settings import (
    HttpSettings,
    LogSettings,
)
from shared.streams import WORKER_GROUP, QueueKeys
from worker.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
# The oldest Kubernetes these manifests target; the preStop `sleep` action needs 1.30 or later.
KUBERNETES_VERSION = "1.33"
SECRET_NAME = "conduit-secrets"
CONFIG_NAME = "conduit-config"
SERVICES = {"gateway": 8000, "notifier": 8001, "health": 8002, "worker": 8003}
# What `python -m <module>` runs for each container, by container name.
MODULES = {**{name: name for name in SERVICES}, "migrate": "shared.migrations"}
# Variables every service reads through shared.serving.serve, besides its own from_env calls.
SERVED = (HttpSettings, LogSettings)

_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_NAMED_REF = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {"name": {"type": "string", "minLength": 1}, "kind": {"type": "string"}},
}
_META = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}
# The parameters of KEDA's redis-streams scaler; all metadata values are strings in the CRD.
REDIS_STREAMS_METADATA = {
    "type": "object",
    "required": ["stream"],
    "additionalProperties": False,
    "properties": {
        name: {"type": "string"}
        for name in (
            "address",
            "host",
            "port",
            "addressFromEnv",
            "hostFromEnv",
            "portFromEnv",
            "usernameFromEnv",
            "passwordFromEnv",
            "stream",
            "consumerGroup",
            "pendingEntriesCount",
            "streamLength",
            "lagCount",
            "activationLagCount",
            "enableTLS",
            "unsafeSsl",
            "databaseIndex",
        )
    },
}
KEDA_SCHEMAS: dict[str, dict[str, Any]] = {
    "ScaledObject": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "ScaledObject"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string"},
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "envSourceContainerName": {"type": "string"},
                        },
                    },
                    "pollingInterval": {"type": "integer", "minimum": 1},
                    "cooldownPeriod": {"type": "integer", "minimum": 0},
                    "initialCooldownPeriod": {"type": "integer", "minimum": 0},
                    "idleReplicaCount": {"type": "integer", "minimum": 0},
                    "minReplicaCount": {"type": "integer", "minimum": 0},
                    "maxReplicaCount": {"type": "integer", "minimum": 1},
                    "fallback": {"type": "object"},
                    "advanced": {"type": "object"},
                    "triggers": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["type", "metadata"],
                            "additionalProperties": False,
                            "properties": {
                                "type": {"type": "string"},
                                "name": {"type": "string"},
                                "metadata": _STRING_MAP,
                                "authenticationRef": _NAMED_REF,
                                "metricType": {"enum": ["AverageValue", "Value", "Utilization"]},
                                "useCachedMetrics": {"type": "boolean"},
                            },
                            "if": {"properties": {"type": {"const": "redis-streams"}}},
                            "then": {"properties": {"metadata": REDIS_STREAMS_METADATA}},
                        },
                    },
                },
            },
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "additionalProperties": False,
        "properties": {
            "apiVersion": {"const": "keda.sh/v1alpha1"},
            "kind": {"const": "TriggerAuthentication"},
            "metadata": _META,
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "additionalProperties": False,
                            "properties": {
                                "parameter": {"type": "string"},
                                "name": {"type": "string"},
                                "key": {"type": "string"},
                            },
                        },
                    },
                    "env": {"type": "array"},
                    "podIdentity": {"type": "object"},
                },
            },
        },
    },
}


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every document of a YAML file; PyYAML ships no type hints, hence the import by name."""
    yaml = importlib.import_module("yaml")
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


@pytest.fixture(scope="module")
def kustomization() -> dict[str, Any]:
    (document,) = load_yaml_documents(K8S / "kustomization.yaml")
    return document


@pytest.fixture(scope="module")
def objects(kustomization: dict[str, Any]) -> list[dict[str, Any]]:
    """Every object the kustomization applies, in order."""
    return [doc for name in kustomization["resources"] for doc in load_yaml_documents(K8S / name)]


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    """The objects of one kind, by name."""
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def pod_specs(objects: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) of every Deployment and Job."""
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield obj["metadata"]["name"], obj["spec"]["template"]["spec"]


def containers(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every container of every Deployment and Job, by container name."""
    found = {c["name"]: c for _, spec in pod_specs(objects) for c in spec["containers"]}
    assert set(found) == set(MODULES)
    return found


def deployment(objects: list[dict[str, Any]], service: str) -> dict[str, Any]:
    return by_kind(objects, "Deployment")[f"conduit-{service}"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A container's explicit env entries, by name."""
    return {entry["name"]: entry for entry in container.get("env", [])}


def settings_read_by(module: str) -> list[type[Any]]:
    """The settings Structs `python -m <module>` reads: its `from_env(X)` calls, plus serve's."""
    main = importlib.import_module(f"{module}.__main__")
    tree = ast.parse(Path(str(main.__file__)).read_text())
    names = {
        node.args[0].id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "from_env"
        and node.args
        and isinstance(node.args[0], ast.Name)
    }
    kinds: list[type[Any]] = [getattr(main, name) for name in sorted(names)]
    return kinds if module == "shared.migrations" else [*kinds, *SERVED]


def default_port(package: str) -> int:
    """The port a service's `__main__` passes to `shared.serving.serve(name, port, ...)`."""
    path = ROOT / "services" / package / package / "__main__.py"
    (port,) = {
        node.args[1].value
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "serve"
        and len(node.args) >= 2
        and isinstance(node.args[1], ast.Constant)
    }
    assert isinstance(port, int), package
    return port


def variables_read_by(module: str) -> set[str]:
    """Every environment variable name `python -m <module>` reads."""
    msgspec = importlib.import_module("msgspec")
    return {
        f"{kind.env_prefix}{field.name.upper()}"
        for kind in settings_read_by(module)
        for field in msgspec.structs.fields(kind)
    }


@pytest.fixture(scope="module")
def app_routes() -> dict[str, set[str]]:
    """The HTTP paths each service serves, from the app its `__main__` builds.

    `serve` is replaced by a function that only builds the app, so the app is the one
    `python -m <service>` would run, whatever `create_app` takes; nothing connects anywhere.
    """
    built: dict[str, Any] = {}

    def build_only(service: str, port: int, build_app: Callable[[], Any], **_: Any) -> None:
        built[service] = build_app()

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JWT_SECRET", "k8s-test-secret-" * 3)
        for name in SERVICES:
            main = importlib.import_module(f"{name}.__main__")
            patch.setattr(main, "serve", build_only)
            main.main()
    routes: dict[str, set[str]] = {}
    for name, app in built.items():
        if isinstance(app, Litestar):
            routes[name] = {route.path for route in app.routes}
        else:
            routes[name] = {path for path, _ in app.routes}
    assert set(routes) == set(SERVICES)
    return routes


def test_kustomization_applies_every_manifest_in_the_folder(
    kustomization: dict[str, Any],
) -> None:
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert kustomization["namespace"] == "conduit"


def test_each_image_is_one_the_kustomization_lets_you_retag(
    kustomization: dict[str, Any], objects: list[dict[str, Any]]
) -> None:
    images = {image["name"] for image in kustomization["images"]}
    assert {c["image"] for c in containers(objects).values()} == images
    assert images == {f"conduit-{name}" for name in SERVICES}


def test_builtin_kinds_validate_strictly_against_the_pinned_kubernetes_schemas(
    objects: list[dict[str, Any]],
) -> None:
    # No type hints in kubernetes-validate: imported by name, as PyYAML is.
    validator = importlib.import_module("kubernetes_validate")
    builtin = [obj for obj in objects if not obj["apiVersion"].startswith("keda.sh/")]
    assert {obj["kind"] for obj in builtin} == {
        "Namespace",
        "ConfigMap",
        "Job",
        "Deployment",
        "Service",
        "Ingress",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
    }
    failures = []
    for obj in builtin:
        try:
            # strict: an unknown field (a typo, a field of a newer version) fails too.
            validator.validate(obj, KUBERNETES_VERSION, strict=True)
        except validator.ValidationError as exc:
            failures.append(f"{obj['kind']}/{obj['metadata']['name']}: {exc.message}")
    assert not failures, "\n".join(failures)


def test_validation_catches_a_misspelled_field() -> None:
    validator = importlib.import_module("kubernetes_validate")
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 80, "targetPrt": 80}]},
    }
    with pytest.raises(validator.ValidationError):
        validator.validate(service, KUBERNETES_VERSION, strict=True)


def test_keda_objects_match_kedas_documented_schema(objects: list[dict[str, Any]]) -> None:
    jsonschema = importlib.import_module("jsonschema")
    keda = [obj for obj in objects if obj["apiVersion"].startswith("keda.sh/")]
    assert {obj["kind"] for obj in keda} == set(KEDA_SCHEMAS)
    for obj in keda:
        jsonschema.validate(obj, KEDA_SCHEMAS[obj["kind"]])
    broken = by_kind(objects, "ScaledObject")["conduit-worker"]
    trigger = {**broken["spec"]["triggers"][0]}
    trigger["metadata"] = {**trigger["metadata"], "lagCuont": "5"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {**broken, "spec": {**broken["spec"], "triggers": [trigger]}},
            KEDA_SCHEMAS["ScaledObject"],
        )


def test_keda_scales_workers_on_the_lag_of_every_lane_of_every_queue(
    objects: list[dict[str, Any]],
) -> None:
    scaled = by_kind(objects, "ScaledObject")["conduit-worker"]
    assert scaled["spec"]["scaleTargetRef"]["name"] in by_kind(objects, "Deployment")
    # Never zero: workers also promote due delayed jobs and reclaim dead workers' jobs.
    assert scaled["spec"]["minReplicaCount"] >= 1
    queues = by_kind(objects, "ConfigMap")[CONFIG_NAME]["data"]["QUEUE_NAMES"].split(",")
    expected = {QueueKeys(queue.strip()).stream_of(p) for queue in queues for p in PRIORITIES}
    assert "conduit:{default}:stream" in expected
    triggers = scaled["spec"]["triggers"]
    assert {t["metadata"]["stream"] for t in triggers} == expected
    authentications = by_kind(objects, "TriggerAuthentication")
    for trigger in triggers:
        metadata = trigger["metadata"]
        assert trigger["type"] == "redis-streams"
        assert metadata["consumerGroup"] == WORKER_GROUP
        # Lag mode: lagCount set, neither of the other two modes' thresholds.
        assert int(metadata["lagCount"]) > 0
        assert not {"pendingEntriesCount", "streamLength"} & set(metadata)
        auth = authentications[trigger["authenticationRef"]["name"]]
        assert auth["spec"]["secretTargetRef"] == [
            {"parameter": "password", "name": SECRET_NAME, "key": "REDIS_PASSWORD"}
        ]


def test_each_container_runs_its_service_on_the_port_of_the_code(
    objects: list[dict[str, Any]],
) -> None:
    found = containers(objects)
    for name, container in found.items():
        assert container["command"] == ["python", "-m", MODULES[name]], name
    for name, port in SERVICES.items():
        container = found[name]
        assert default_port(name) == port, name
        assert container["ports"] == [{"name": "http", "containerPort": port}], name
        assert env_of(container)["HTTP_PORT"]["value"] == str(port), name
        service = by_kind(objects, "Service")[f"conduit-{name}"]
        assert service["spec"]["ports"] == [{"name": "http", "port": port, "targetPort": "http"}]
        labels = deployment(objects, name)["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name


def test_probes_ask_paths_each_app_serves(
    objects: list[dict[str, Any]], app_routes: dict[str, set[str]]
) -> None:
    found = containers(objects)
    for name in SERVICES:
        container = found[name]
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert {"/readyz", "/livez", "/metrics"} <= app_routes[name], name


def test_every_variable_set_is_one_the_code_reads(objects: list[dict[str, Any]]) -> None:
    config = by_kind(objects, "ConfigMap")[CONFIG_NAME]["data"]
    readers: set[str] = set()
    for name, container in containers(objects).items():
        read = variables_read_by(MODULES[name])
        assert set(env_of(container)) <= read, (name, set(env_of(container)) - read)
        if any(ref["configMapRef"]["name"] == CONFIG_NAME for ref in container.get("envFrom", [])):
            readers |= read
    assert set(config) <= readers, set(config) - readers


def test_secrets_come_only_from_the_secret_which_the_files_do_not_hold(
    objects: list[dict[str, Any]], kustomization: dict[str, Any]
) -> None:
    assert not by_kind(objects, "Secret")
    secret_like = {"REDIS_URL", "DATABASE_URL", "JWT_SECRET", "WORKER_CALLBACK_SECRET"}
    instructions = (K8S / "kustomization.yaml").read_text()
    for name, container in containers(objects).items():
        for variable, entry in env_of(container).items():
            if variable in secret_like:
                reference = entry["valueFrom"]["secretKeyRef"]
                assert reference["name"] == SECRET_NAME, (name, variable)
                # The key is the variable's name, and kustomization.yaml says how to create it.
                assert reference["key"] == variable, (name, variable)
                assert variable in instructions, variable
            else:
                assert "valueFrom" not in entry or "secretKeyRef" not in entry["valueFrom"]
        assert not {
            ref.get("secretRef", {}).get("name") for ref in container.get("envFrom", [])
        } - {None}
    assert "REDIS_PASSWORD" in instructions


def test_pods_run_as_non_root_without_privileges_and_with_resources(
    objects: list[dict[str, Any]],
) -> None:
    for name, spec in pod_specs(objects):
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        # The image's user (deploy/Dockerfile), so files it owns stay readable.
        assert spec["securityContext"]["runAsUser"] == 10001, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), name
            assert "memory" in resources["limits"], name
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    assert "--uid 10001" in dockerfile


def test_worker_finishes_jobs_in_hand_before_the_kubelet_kills_it(
    objects: list[dict[str, Any]],
) -> None:
    pod = deployment(objects, "worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 30
    (container,) = pod["containers"]
    pre_stop_s = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace_s = float(env_of(container)["WORKER_GRACE_S"]["value"])
    assert WorkerSettings(grace_s=grace_s).grace_s == grace_s
    # worker.__main__ gives uvicorn grace + 1 s; the hand-back of leftovers needs a moment more.
    assert pre_stop_s + grace_s + 1 + 1 <= pod["terminationGracePeriodSeconds"]


def test_ingress_routes_the_api_and_the_websocket_with_long_timeouts(
    objects: list[dict[str, Any]], app_routes: dict[str, set[str]]
) -> None:
    ingresses = by_kind(objects, "Ingress")
    backends: dict[str, str] = {}
    for ingress in ingresses.values():
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backends[path["path"]] = path["backend"]["service"]["name"]
    assert backends == {
        "/v1": "conduit-gateway",
        "/schema": "conduit-gateway",
        "/console": "conduit-gateway",
        "/ws": "conduit-notifier",
    }
    for path, service in backends.items():
        served = app_routes[service.removeprefix("conduit-")]
        assert any(route == path or route.startswith(f"{path}/") for route in served), path
    websocket = ingresses["conduit-ws"]["metadata"]["annotations"]
    for timeout in ("proxy-read-timeout", "proxy-send-timeout"):
        assert int(websocket[f"nginx.ingress.kubernetes.io/{timeout}"]) >= 3600
    api = ingresses["conduit-api"]["metadata"]["annotations"]
    body_size = f"{DEFAULT_MAX_BODY_BYTES // 2**20}m"
    assert api["nginx.ingress.kubernetes.io/proxy-body-size"] == body_size


def test_health_probes_the_services_by_their_service_names(objects: list[dict[str, Any]]) -> None:
    environment = env_of(containers(objects)["health"])
    # Workers are found by their heartbeats in Redis, not by a URL.
    for name in ("gateway", "notifier"):
        url = environment[f"HEALTH_{name.upper()}_URL"]["value"]
        assert url == f"http://conduit-{name}:{SERVICES[name]}"


def test_the_console_reads_health_by_its_service_name_and_opens_the_ingress_websocket(
    objects: list[dict[str, Any]],
) -> None:
    gateway = env_of(containers(objects)["gateway"])
    notifier = env_of(containers(objects)["notifier"])
    assert gateway["CONSOLE_HEALTH_URL"]["value"] == f"http://conduit-health:{SERVICES['health']}"
    websocket = urlsplit(gateway["CONSOLE_NOTIFIER_URL"]["value"])
    origin = urlsplit(notifier["NOTIFIER_ALLOWED_ORIGINS"]["value"])
    assert (websocket.scheme, websocket.path) == ("wss", "/ws")
    # The console's pages come from the Ingress host, which the notifier lets open the socket.
    assert (origin.scheme, origin.hostname) == ("https", websocket.hostname)


def test_disruption_budgets_and_autoscalers_target_the_right_pods(
    objects: list[dict[str, Any]],
) -> None:
    budgets = by_kind(objects, "PodDisruptionBudget")
    for name in ("gateway", "worker", "notifier"):
        labels = deployment(objects, name)["spec"]["template"]["metadata"]["labels"]
        selector = budgets[f"conduit-{name}"]["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
    hpa = by_kind(objects, "HorizontalPodAutoscaler")["conduit-notifier"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "conduit-notifier"
    assert hpa["spec"]["minReplicas"] >= 2
    # Autoscaled Deployments name no replica count, which an apply would otherwise reset.
    for name in ("worker", "notifier"):
        assert "replicas" not in deployment(objects, name)["spec"], name
