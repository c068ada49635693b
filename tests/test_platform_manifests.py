"""The platform manifests, checked offline: every kustomize overlay renders with the pinned kustomize and its
objects validate against the Kubernetes schemas (custom resources carry the fields we rely on), the pieces agree
with each other (names, ports, env, cluster name), the compose file validates against the Compose specification,
and the Argo CD notification template, rendered as Argo CD renders it, is a body the running correlator accepts.

Nothing here runs a cluster, a container engine or Argo CD: deploy/README.md says so too.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import kubernetes_validate
import pytest
import yaml

from correlator.api.server import Server
from tests.test_schema import EXPECTED_COLUMNS

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
OVERLAYS = ("single-node", "cluster")
KUSTOMIZE_VERSION = "v5.8.2"
# The Kubernetes release whose schemas the built-in kinds must satisfy (kubernetes-validate ships them).
KUBERNETES_VERSION = "1.33.0"
NAMESPACE = "correlator"
SECRET = "correlator-secrets"
# Every key of the Secret the manifests read; deploy/README.md tells how to create it with exactly these.
SECRET_KEYS = {"api-tokens", "clickhouse-password", "grafana-clickhouse-password", "grafana-admin-password"}
CUSTOM_GROUPS = (
    "argoproj.io/",
    "telemetry.istio.io/",
    "security.istio.io/",
    "install.istio.io/",
    "clickhouse.altinity.com/",
    "clickhouse-keeper.altinity.com/",
)
REPO_URL = "https://github.com/example/correlator.git"


def need(tool: str, found: str | None, how: str) -> str:
    """The tool's path; without it skip with the reason, or fail when CI is set (CI must have every tool)."""
    if found:
        return found
    message = f"{tool} is not installed: {how}"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@cache
def _kustomize_path() -> str | None:
    for candidate in (Path(sys.executable).parent / "kustomize", shutil.which("kustomize")):
        if candidate and Path(candidate).is_file():
            version = subprocess.run([str(candidate), "version"], capture_output=True, text=True, check=False)
            if version.stdout.strip() == KUSTOMIZE_VERSION:
                return str(candidate)
    return None


def kustomize() -> str:
    how = (
        f"scripts/test installs kustomize {KUSTOMIZE_VERSION} into .venv/bin "
        f"(GOBIN=$PWD/.venv/bin go install sigs.k8s.io/kustomize/kustomize/v5@{KUSTOMIZE_VERSION})"
    )
    return need("kustomize", _kustomize_path(), how)


@cache
def _build(path: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [kustomize(), "build", "--load-restrictor", "LoadRestrictionsNone", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


def build(path: Path) -> list[dict[str, Any]]:
    """The objects `kustomize build` renders from a directory (a deep copy: tests may change them)."""
    return copy.deepcopy(list(_build(path)))


def overlay(name: str) -> list[dict[str, Any]]:
    return build(KUSTOMIZE_ROOTS[name])


KUSTOMIZE_ROOTS = {
    **{name: KUBERNETES / "overlays" / name for name in OVERLAYS},
    "istio": DEPLOY / "istio",
    "argocd": DEPLOY / "argocd",
    "argocd-applications": DEPLOY / "argocd" / "applications",
}


def one(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name}, got {len(found)}"
    return found[0]


def by_prefix(objects: list[dict[str, Any]], kind: str, prefix: str) -> dict[str, Any]:
    """A generated object, whose name kustomize suffixes with a content hash."""
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix + "-")]
    assert len(found) == 1, f"expected one {kind} named {prefix}-<hash>, got {[o['metadata']['name'] for o in found]}"
    return found[0]


def container(workload: dict[str, Any], name: str | None = None) -> dict[str, Any]:
    containers: list[dict[str, Any]] = workload["spec"]["template"]["spec"]["containers"]
    return containers[0] if name is None else next(c for c in containers if c["name"] == name)


def env(workload: dict[str, Any]) -> dict[str, Any]:
    """A workload's first container's environment, name to value (or to its valueFrom)."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload).get("env", [])}


def workloads(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] in ("Deployment", "DaemonSet", "StatefulSet")]


# Rendering and schemas


@pytest.mark.parametrize("name", sorted(KUSTOMIZE_ROOTS))
def test_every_kustomization_renders(name: str) -> None:
    assert build(KUSTOMIZE_ROOTS[name])


@pytest.mark.parametrize("name", OVERLAYS)
def test_built_in_kinds_validate_against_the_kubernetes_schemas(name: str) -> None:
    validated = []
    for obj in overlay(name):
        if obj["apiVersion"].startswith(CUSTOM_GROUPS):
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {e.message} at {list(e.absolute_path)}")
        validated.append(obj["kind"])
    assert {"Deployment", "DaemonSet", "Service", "HorizontalPodAutoscaler", "ConfigMap"} <= set(validated)


def test_custom_resources_carry_kind_name_and_spec() -> None:
    rendered = [obj for name in KUSTOMIZE_ROOTS for obj in build(KUSTOMIZE_ROOTS[name])]
    rendered += [*_applications(), yaml.safe_load((DEPLOY / "istio" / "meshconfig.yaml").read_text())]
    custom = [obj for obj in rendered if obj["apiVersion"].startswith(CUSTOM_GROUPS)]
    kinds = {obj["kind"] for obj in custom}
    assert kinds == {
        "Application", "Telemetry", "PeerAuthentication", "IstioOperator", "ClickHouseInstallation",
        "ClickHouseKeeperInstallation",
    }  # fmt: skip
    for obj in custom:
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj["metadata"]["name"]), obj["metadata"]
        assert isinstance(obj["spec"], dict), obj["kind"]
        assert obj["spec"], obj["kind"]


@pytest.mark.parametrize("name", OVERLAYS)
def test_everything_lands_in_the_correlator_namespace(name: str) -> None:
    cluster_scoped = {"Namespace", "ClusterRole", "ClusterRoleBinding"}
    for obj in overlay(name):
        if obj["kind"] not in cluster_scoped:
            assert obj["metadata"].get("namespace") == NAMESPACE, f"{obj['kind']} {obj['metadata']['name']}"


@pytest.mark.parametrize("name", OVERLAYS)
def test_env_references_only_use_variables_defined_before_them(name: str) -> None:
    # Kubernetes expands $(VAR) only from variables earlier in the same container; later ones stay literal.
    for workload in workloads(overlay(name)):
        for spec in workload["spec"]["template"]["spec"]["containers"]:
            defined: set[str] = set()
            for variable in spec.get("env", []):
                for reference in re.findall(r"\$\((\w+)\)", variable.get("value", "")):
                    assert reference in defined, f"{workload['metadata']['name']}: {variable['name']} uses {reference}"
                defined.add(variable["name"])


@pytest.mark.parametrize("name", OVERLAYS)
def test_config_maps_and_secrets_that_pods_use_exist_or_are_documented(name: str) -> None:
    objects = overlay(name)
    config_maps = {o["metadata"]["name"] for o in objects if o["kind"] == "ConfigMap"}
    secret_keys: set[str] = set()
    for workload in workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps, volume
        for spec in pod["containers"]:
            for variable in spec.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] == SECRET
                    secret_keys.add(ref["key"])
    assert secret_keys == SECRET_KEYS
    readme = (DEPLOY / "README.md").read_text()
    assert all(f"--from-literal={key}=" in readme for key in SECRET_KEYS)


# The correlator


@pytest.mark.parametrize("name", OVERLAYS)
def test_correlator_runs_as_a_hardened_stateless_server(name: str) -> None:
    objects = overlay(name)
    deployment = one(objects, "Deployment", "correlator")
    spec = container(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert spec["args"] == ["serve"]
    assert spec["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert set(spec["resources"]) == {"requests", "limits"}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    variables = env(deployment)
    assert variables["CORRELATOR_BIND"] == "0.0.0.0"
    assert variables["CORRELATOR_API_TOKENS"] == {"secretKeyRef": {"name": SECRET, "key": "api-tokens"}}
    assert re.fullmatch(r"http://correlator:\$\(CLICKHOUSE_PASSWORD\)@\$\(CLICKHOUSE_HOST\):8123/otel",
                        variables["CORRELATOR_CLICKHOUSE_DSN"])  # fmt: skip
    port = spec["ports"][0]
    service = one(objects, "Service", "correlator")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["ports"][0]["port"] == port["containerPort"] == 8080
    hpa = one(objects, "HorizontalPodAutoscaler", "correlator")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "correlator"}
    assert hpa["spec"]["minReplicas"] >= 2


def test_the_argocd_notifications_url_names_the_correlator_service() -> None:
    service = one(overlay("single-node"), "Service", "correlator")
    config = one(build(DEPLOY / "argocd"), "ConfigMap", "argocd-notifications-cm")
    webhook = yaml.safe_load(config["data"]["service.webhook.correlator"])
    port = service["spec"]["ports"][0]["port"]
    assert webhook["url"] == f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{port}"


# ClickHouse, single node and cluster


def test_single_node_clickhouse_is_a_stateful_set_the_others_reach() -> None:
    objects = overlay("single-node")
    statefulset = one(objects, "StatefulSet", "clickhouse")
    service = one(objects, "Service", "clickhouse")
    ports = {p["port"] for p in service["spec"]["ports"]}
    assert {8123, 9000} <= ports
    assert statefulset["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    assert env(one(objects, "Deployment", "correlator"))["CLICKHOUSE_HOST"] == "clickhouse"
    assert env(one(objects, "Deployment", "otelcol-gateway"))["CLICKHOUSE_ENDPOINT"] == "tcp://clickhouse:9000"
    assert env(one(objects, "Deployment", "grafana"))["CLICKHOUSE_HOST"] == "clickhouse"
    assert "CORRELATOR_CLICKHOUSE_CLUSTER" not in env(one(objects, "Deployment", "correlator"))


def test_single_node_clickhouse_users_read_their_passwords_from_the_pod_environment() -> None:
    objects = overlay("single-node")
    config = by_prefix(objects, "ConfigMap", "clickhouse-config")
    users = ET.fromstring(config["data"]["users.xml"]).find("users")
    assert users is not None
    passwords = {user.tag: user.find("password") for user in users}
    assert set(passwords) == {"correlator", "grafana"}
    names = {tag: element.get("from_env") for tag, element in passwords.items() if element is not None}
    clickhouse_env = env(one(objects, "StatefulSet", "clickhouse"))
    assert names["correlator"] in clickhouse_env
    assert names["grafana"] in clickhouse_env
    ET.fromstring(config["data"]["config.xml"])


def test_cluster_overlay_runs_the_operator_resources_the_correlator_is_configured_for() -> None:
    objects = overlay("cluster")
    assert not [o for o in objects if o["kind"] == "StatefulSet"]
    installation = next(o for o in objects if o["kind"] == "ClickHouseInstallation")
    keeper = next(o for o in objects if o["kind"] == "ClickHouseKeeperInstallation")
    assert installation["apiVersion"] == "clickhouse.altinity.com/v1"
    assert keeper["apiVersion"] == "clickhouse-keeper.altinity.com/v1"
    configuration = installation["spec"]["configuration"]
    (cluster,) = configuration["clusters"]
    assert cluster["layout"] == {"shardsCount": 2, "replicasCount": 2}
    (keeper_cluster,) = keeper["spec"]["configuration"]["clusters"]
    assert keeper_cluster["layout"]["replicasCount"] == 3
    # The operator names the Keeper Service keeper-<name> and the installation's Service clickhouse-<name>.
    keeper_port = int(keeper["spec"]["configuration"]["settings"]["keeper_server/tcp_port"])
    assert configuration["zookeeper"]["nodes"] == [
        {"host": f"keeper-{keeper['metadata']['name']}", "port": keeper_port}
    ]
    (service,) = installation["spec"]["templates"]["serviceTemplates"]
    assert installation["spec"]["defaults"]["templates"]["serviceTemplate"] == service["name"]
    assert service["spec"]["type"] == "ClusterIP"
    assert {p["port"] for p in service["spec"]["ports"]} == {8123, 9000}
    host = service["generateName"].replace("{chi}", installation["metadata"]["name"])
    assert host == f"clickhouse-{installation['metadata']['name']}"
    correlator = env(one(objects, "Deployment", "correlator"))
    assert correlator["CORRELATOR_CLICKHOUSE_CLUSTER"] == cluster["name"]
    assert correlator["CLICKHOUSE_HOST"] == host
    assert env(one(objects, "Deployment", "otelcol-gateway"))["CLICKHOUSE_ENDPOINT"] == f"tcp://{host}:9000"
    assert env(one(objects, "Deployment", "grafana"))["CLICKHOUSE_HOST"] == host
    # Read-your-writes through Distributed tables (docs/cluster.md), for the correlator's user only.
    assert configuration["users"]["correlator/profile"] == "correlator"
    assert configuration["profiles"]["correlator/distributed_foreground_insert"] == 1
    assert configuration["users"]["correlator/password"]["valueFrom"]["secretKeyRef"]["name"] == SECRET


# The collectors and Grafana: one source for their files


def test_collector_config_maps_hold_collector_config_byte_for_byte() -> None:
    objects = overlay("single-node")
    for role in ("agent", "gateway"):
        config = by_prefix(objects, "ConfigMap", f"otelcol-{role}")
        assert config["data"] == {f"{role}.yaml": (ROOT / "collector_config" / f"{role}.yaml").read_text()}
        workload = one(objects, "DaemonSet" if role == "agent" else "Deployment", f"otelcol-{role}")
        spec = container(workload)
        mount = next(m for m in spec["volumeMounts"] if m["name"] == "config")
        assert spec["args"] == [f"--config={mount['mountPath']}/{role}.yaml"]
    agent = one(objects, "DaemonSet", "otelcol-agent")
    assert env(agent)["K8S_NODE_NAME"] == {"fieldRef": {"fieldPath": "spec.nodeName"}}
    gateway_port = one(objects, "Service", "otelcol-gateway")["spec"]["ports"][0]["port"]
    assert env(agent)["OTELCOL_GATEWAY_ENDPOINT"] == f"otelcol-gateway:{gateway_port}"
    assert one(objects, "Service", "otelcol-agent")["spec"]["internalTrafficPolicy"] == "Local"


def test_grafana_mounts_the_provisioning_from_dashboards_provisioning() -> None:
    objects = overlay("single-node")
    provisioning = by_prefix(objects, "ConfigMap", "grafana-provisioning")
    sources = ROOT / "dashboards" / "provisioning"
    assert provisioning["data"] == {
        "clickhouse.yaml": (sources / "datasources" / "clickhouse.yaml").read_text(),
        "correlator.yaml": (sources / "dashboards" / "correlator.yaml").read_text(),
    }
    grafana = one(objects, "Deployment", "grafana")
    mounts = {m["mountPath"]: m for m in container(grafana)["volumeMounts"]}
    assert mounts["/etc/grafana/provisioning/datasources/clickhouse.yaml"]["subPath"] == "clickhouse.yaml"
    assert mounts["/etc/grafana/provisioning/dashboards/correlator.yaml"]["subPath"] == "correlator.yaml"
    provider = yaml.safe_load(provisioning["data"]["correlator.yaml"])["providers"][0]
    dashboards = mounts[provider["options"]["path"]]
    volume = next(v for v in grafana["spec"]["template"]["spec"]["volumes"] if v["name"] == dashboards["name"])
    assert volume["configMap"]["name"].startswith("grafana-dashboards-")
    datasource_env = set(re.findall(r"\$\{(\w+)\}", provisioning["data"]["clickhouse.yaml"]))
    assert datasource_env == {"CLICKHOUSE_HOST", "CLICKHOUSE_USER", "CLICKHOUSE_PASSWORD"}
    assert datasource_env <= set(env(grafana))


def test_the_datasource_reads_the_otel_tables_of_schema_md() -> None:
    config = yaml.safe_load((ROOT / "dashboards" / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    (source,) = config["datasources"]
    assert source["type"] == "grafana-clickhouse-datasource"
    data = source["jsonData"]
    assert (data["host"], data["username"]) == ("${CLICKHOUSE_HOST}", "${CLICKHOUSE_USER}")
    assert source["secureJsonData"]["password"] == "${CLICKHOUSE_PASSWORD}"
    assert data["defaultDatabase"] == "otel"
    for signal, table in (("logs", "otel_logs"), ("traces", "otel_traces")):
        settings = data[signal]
        assert (settings["defaultDatabase"], settings["defaultTable"], settings["otelEnabled"]) == ("otel", table, True)
        columns = {name.split(".")[0] for name, _ in EXPECTED_COLUMNS[table]}
        named = {value for key, value in settings.items() if key.endswith("Column") or key.endswith("ColumnPrefix")}
        assert named <= columns, named - columns
    assert data["traces"]["durationUnit"] == "nanoseconds"
    assert data["traces"]["defaultTable"] + data["traces"]["traceTimestampTableSuffix"] in EXPECTED_COLUMNS


# Argo CD and Istio


def _applications() -> list[dict[str, Any]]:
    listed = build(DEPLOY / "argocd" / "applications")
    others = [yaml.safe_load(path.read_text()) for path in (DEPLOY / "argocd" / "applications").glob("*.yaml")]
    root = yaml.safe_load((DEPLOY / "argocd" / "root-app.yaml").read_text())
    unlisted = [o for o in others if o.get("kind") == "Application" and o not in listed]
    return [*listed, *unlisted, root]


def test_argocd_applications_point_at_paths_of_this_repository() -> None:
    applications = _applications()
    assert {a["metadata"]["name"] for a in applications} >= {
        "correlator-platform", "correlator", "clickhouse-operator", "argocd-notifications", "correlator-istio",
    }  # fmt: skip
    paths = set()
    for application in applications:
        assert application["apiVersion"] == "argoproj.io/v1alpha1"
        assert application["kind"] == "Application"
        assert application["metadata"]["namespace"] == "argocd"
        spec = application["spec"]
        assert spec["project"]
        assert spec["destination"]["server"]
        assert spec["destination"]["namespace"]
        source = spec["source"]
        assert source["targetRevision"]
        if "chart" in source:
            continue
        # One placeholder everywhere, which deploy/README.md says how to replace.
        assert source["repoURL"] == REPO_URL
        assert (ROOT / source["path"] / "kustomization.yaml").is_file(), source["path"]
        paths.add(source["path"])
    assert {f"deploy/kubernetes/overlays/{name}" for name in OVERLAYS} <= paths
    assert REPO_URL in (DEPLOY / "README.md").read_text()


def test_argocd_notifications_application_deploys_the_one_config_map() -> None:
    rendered = one(build(DEPLOY / "argocd"), "ConfigMap", "argocd-notifications-cm")
    assert rendered == yaml.safe_load((DEPLOY / "argocd" / "notifications-cm.yaml").read_text())


def test_istio_traces_go_to_the_collector_agent_and_mtls_is_strict_for_the_correlator() -> None:
    objects = build(DEPLOY / "istio")
    telemetry = one(objects, "Telemetry", "mesh-default")
    assert telemetry["apiVersion"] == "telemetry.istio.io/v1"
    assert telemetry["metadata"]["namespace"] == "istio-system"
    (provider,) = telemetry["spec"]["tracing"][0]["providers"]
    mesh = yaml.safe_load((DEPLOY / "istio" / "meshconfig.yaml").read_text())
    providers = {p["name"]: p for p in mesh["spec"]["meshConfig"]["extensionProviders"]}
    otel = providers[provider["name"]]["opentelemetry"]
    agent = one(overlay("single-node"), "Service", "otelcol-agent")
    assert otel["service"] == f"{agent['metadata']['name']}.{NAMESPACE}.svc.cluster.local"
    assert otel["port"] in {p["port"] for p in agent["spec"]["ports"] if p["name"] == "otlp-grpc"}
    peer = one(objects, "PeerAuthentication", "default")
    assert peer["apiVersion"] == "security.istio.io/v1"
    assert peer["metadata"]["namespace"] == NAMESPACE
    assert peer["spec"]["mtls"]["mode"] == "STRICT"
    correlator = one(overlay("single-node"), "Deployment", "correlator")
    assert correlator["spec"]["template"]["metadata"]["labels"]["sidecar.istio.io/inject"] == "true"


@pytest.mark.parametrize("name", OVERLAYS)
def test_workloads_carry_prometheus_scrape_annotations_for_a_port_they_open(name: str) -> None:
    for workload in workloads(overlay(name)):
        annotations = workload["spec"]["template"]["metadata"].get("annotations", {})
        assert annotations.get("prometheus.io/scrape") == "true", workload["metadata"]["name"]
        ports = {p["containerPort"] for c in workload["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        assert int(annotations["prometheus.io/port"]) in ports, workload["metadata"]["name"]


# Compose


def compose_schema() -> dict[str, Any]:
    """The Compose specification's schema (compose-spec/compose-spec, schema/compose-spec.json) as vendored by the
    pinned check-jsonschema package."""
    text = (resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def test_compose_file_validates_against_the_compose_specification() -> None:
    schema = compose_schema()
    assert schema["title"] == "Compose Specification"
    document = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(document)]
    assert errors == []
    # The schema is what catches a mistake: a misspelt key fails.
    broken = copy.deepcopy(document)
    broken["services"]["correlator"]["depend_on"] = broken["services"]["correlator"].pop("depends_on")
    assert list(validator.iter_errors(broken))


def test_compose_runs_the_correlator_against_clickhouse_and_migrates_first() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert set(services) == {"clickhouse", "collector", "correlator", "grafana"}
    correlator = services["correlator"]
    assert correlator["command"] == ["serve"]
    assert correlator["environment"]["CORRELATOR_BIND"] == "0.0.0.0"
    assert correlator["environment"]["CORRELATOR_CLICKHOUSE_DSN"].endswith("@clickhouse:8123/otel")
    assert correlator["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    # The gateway writes only once `serve` has migrated (its exporter creates no tables).
    assert services["collector"]["depends_on"]["correlator"]["condition"] == "service_healthy"
    assert (DEPLOY / correlator["build"]["context"] / correlator["build"]["dockerfile"]).is_file()
    for service in services.values():
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), port
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source


# The Argo CD notification, rendered as Argo CD renders it, is accepted by the correlator


def go() -> str:
    found = shutil.which("go") or (shutil.which("go", path="/usr/local/go/bin"))
    return need("go", found, "the Argo CD template renderer (tests/argocd_render) is built with the Go toolchain")


@pytest.fixture(scope="module")
def argocd_render(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/argocd_render built into a temporary directory (text/template with sprig, as Argo CD uses them)."""
    binary = tmp_path_factory.mktemp("argocd-render") / "argocd-render"
    built = subprocess.run(
        [go(), "build", "-o", str(binary), "."],
        cwd=ROOT / "tests" / "argocd_render",
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert built.returncode == 0, built.stderr
    return binary


def application(name: str, service: str) -> dict[str, Any]:
    """An Argo CD Application as the notifications controller sees it after a successful sync."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": name,
            "namespace": "argocd",
            "labels": {"app.kubernetes.io/name": service, "environment": "staging"},
            "uid": str(uuid.uuid4()),
        },
        "spec": {
            "project": "default",
            "source": {"repoURL": "https://github.com/acme-shop/deploy.git", "path": service, "targetRevision": "main"},
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"},
        },
        "status": {
            "sync": {"status": "Synced", "revision": "a3f9c2e1d0b8a7c6e5f4d3c2b1a0f9e8d7c6b5a4"},
            "health": {"status": "Healthy", "lastTransitionTime": "2026-04-28T12:00:45Z"},
            "operationState": {
                "phase": "Succeeded",
                "message": "successfully synced (all tasks run)",
                "startedAt": "2026-04-28T12:00:03Z",
                "finishedAt": "2026-04-28T12:00:41Z",
                "syncResult": {"revision": "a3f9c2e1d0b8a7c6e5f4d3c2b1a0f9e8d7c6b5a4"},
            },
            "summary": {
                "images": [f"ghcr.io/acme-shop/{service}:1.5.0", "docker.io/envoyproxy/envoy:v1.32.1"],
                "externalURLs": [],
            },
        },
    }  # fmt: skip


def render_notification(binary: Path, app: dict[str, Any]) -> dict[str, str]:
    config = yaml.safe_load((DEPLOY / "argocd" / "notifications-cm.yaml").read_text())["data"]
    webhook = yaml.safe_load(config["template.correlator-deploy"])["webhook"]["correlator"]
    context = yaml.safe_load(config["context"])
    given = {"templates": {"body": webhook["body"], "path": webhook["path"]}, "vars": {"app": app, "context": context}}
    result = subprocess.run(
        [str(binary)], input=json.dumps(given), capture_output=True, text=True, check=False, timeout=30
    )
    assert result.returncode == 0, result.stderr
    rendered: dict[str, str] = json.loads(result.stdout)
    rendered["method"] = webhook["method"]
    return rendered


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url(), timeout=30) as client:
        yield client


def test_the_rendered_argocd_notification_is_a_deploy_the_correlator_records(
    argocd_render: Path, api: httpx.Client
) -> None:
    suffix = uuid.uuid4().hex[:8]
    service = f"checkout-{suffix}"
    rendered = render_notification(argocd_render, application(f"shop-{service}", service))
    assert rendered["method"] == "POST"
    assert rendered["path"] == "/api/v1/webhooks/argocd"
    body = json.loads(rendered["body"])
    assert body["service"] == service
    assert body["url"] == f"https://argocd.example.com/applications/argocd/shop-{service}"
    response = api.post(rendered["path"], content=rendered["body"], headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    (deploy_id,) = response.json()["deploy_ids"]
    started = 1777377603  # 2026-04-28T12:00:03Z
    assert deploy_id == f"argocd-shop-{service}-a3f9c2e1d0b8a7c6e5f4d3c2b1a0f9e8d7c6b5a4-{started}"
    deploy = api.get(f"/api/v1/deploys/{deploy_id}").json()
    assert (deploy["service"], deploy["version"], deploy["environment"]) == (service, "1.5.0", "staging")
    assert (deploy["status"], deploy["source"]) == ("succeeded", "argocd")
    assert deploy["revision"] == "a3f9c2e1d0b8a7c6e5f4d3c2b1a0f9e8d7c6b5a4"


def test_an_application_missing_optional_fields_still_renders_valid_json(argocd_render: Path) -> None:
    # A first sync still running: no health yet, no finish, no images; `dig` keeps the JSON whole.
    app = application("shop-new", "new")
    del app["metadata"]["labels"], app["status"]["health"], app["status"]["summary"]
    app["status"]["operationState"] = {"phase": "Running", "startedAt": "2026-04-28T12:00:03Z"}
    body = json.loads(render_notification(argocd_render, app)["body"])
    assert (body["service"], body["environment"], body["images"], body["health"]) == ("", "", [], "")
    assert body["phase"] == "Running"
    assert body["revision"] == "a3f9c2e1d0b8a7c6e5f4d3c2b1a0f9e8d7c6b5a4"
