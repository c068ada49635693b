"""Our collector distribution and its configs, proven by the real otelcol-correlator binary.

The binary comes from scripts/build-collector (CORRELATOR_OTELCOL overrides its path). Without it these tests skip,
except under CI, where they fail: CI builds the collector before pytest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from correlator.api.server import Server
from tests.collector_support import (
    CONFIG_DIR,
    ROOT,
    SDK_APP,
    collector_binary,
    escape_dollars,
    exposition_server,
    listen_env,
    run_collector_command,
    running_collector,
    wait_for,
    write_config,
)
from tests.conftest import query, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def otelcol() -> Path:
    return collector_binary()


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    """A kubeconfig naming an API server nobody runs: agent.yaml's Kubernetes clients are built, never used."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        json.dumps({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": "https://127.0.0.1:1"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
            "users": [{"name": "test", "user": {"token": "not-a-token"}}],
        })
    )  # fmt: skip
    return path


def shipped_config_env(name: str, kubeconfig: Path) -> dict[str, str]:
    """What each shipped config needs to run outside its usual home (agent: a node name and a Kubernetes API)."""
    env = listen_env()
    if name == "agent.yaml":
        env |= {"K8S_NODE_NAME": "node-1", "OTELCOL_K8S_AUTH_TYPE": "kubeConfig", "KUBECONFIG": str(kubeconfig)}
    return env


def resolved_config(otelcol: Path, config: Path, env: dict[str, str]) -> dict[str, Any]:
    """The config after env substitution and defaults, as the collector itself resolves it."""
    result = run_collector_command(
        otelcol, "print-config", "--mode", "unredacted", "--format", "json", "--config", str(config), env=env
    )
    assert result.returncode == 0, result.stderr
    resolved: dict[str, Any] = json.loads(result.stdout)
    return resolved


# --- the distribution ---------------------------------------------------------------------------------------


def test_distribution_has_the_pinned_components(otelcol: Path) -> None:
    result = run_collector_command(otelcol, "components", env={})
    assert result.returncode == 0, result.stderr
    manifest = (CONFIG_DIR / "builder-config.yaml").read_text()
    pinned = {line.split("gomod:")[1].strip() for line in manifest.splitlines() if "gomod:" in line}
    built = {line.split("module:")[1].strip() for line in result.stdout.splitlines() if "module:" in line}
    # Every component and provider of the binary is exactly a module@version of the manifest, and all are there.
    assert built == pinned
    # One release: the v0.x modules share one version (the stable v1.x core modules are that release's too).
    releases = {entry.split()[1] for entry in pinned if entry.split()[1].startswith("v0.")}
    assert len(releases) == 1, f"components of more than one release: {sorted(releases)}"


# --- validate -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["local.yaml", "gateway.yaml", "agent.yaml"])
def test_shipped_config_validates(otelcol: Path, kubeconfig: Path, name: str) -> None:
    result = run_collector_command(
        otelcol, "validate", "--config", str(CONFIG_DIR / name), env=shipped_config_env(name, kubeconfig)
    )
    assert result.returncode == 0, f"{name} does not validate:\n{result.stderr}"


def test_gateway_writes_otel_database_and_leaves_the_schema_to_the_correlator(otelcol: Path) -> None:
    config = CONFIG_DIR / "gateway.yaml"
    defaults = resolved_config(otelcol, config, listen_env())["exporters"]["clickhouse"]
    assert (defaults["database"], defaults["create_schema"], defaults["cluster_name"]) == ("otel", False, "")
    assert (defaults["ttl"], defaults["password"]) == (0, "")  # durations print as nanoseconds
    tables = {kind: table["name"] for kind, table in defaults["metrics_tables"].items()}
    assert tables["exponential_histogram"] == "otel_metrics_exponential_histogram"
    assert (defaults["logs_table_name"], defaults["traces_table_name"]) == ("otel_logs", "otel_traces")

    env = listen_env() | {
        "CLICKHOUSE_ENDPOINT": "http://ch.example:8123", "CLICKHOUSE_CLUSTER": "prod", "CLICKHOUSE_TTL": "720h",
        "CLICKHOUSE_PASSWORD": "s3cret", "CLICKHOUSE_DATABASE": "telemetry",
    }  # fmt: skip
    chosen = resolved_config(otelcol, config, env)["exporters"]["clickhouse"]
    assert (chosen["endpoint"], chosen["cluster_name"], chosen["ttl"]) == (
        "http://ch.example:8123",
        "prod",
        720 * 3600 * 10**9,
    )
    assert (chosen["password"], chosen["database"], chosen["create_schema"]) == ("s3cret", "telemetry", False)


def test_local_config_sends_the_token_only_as_configured(otelcol: Path) -> None:
    config = CONFIG_DIR / "local.yaml"

    def exporter(env: dict[str, str]) -> tuple[str, dict[str, str]]:
        resolved = resolved_config(otelcol, config, env)["exporters"]["otlp_http/correlator"]
        return resolved["endpoint"], {header["name"]: header["value"] for header in resolved["headers"]}

    assert exporter(listen_env()) == ("http://127.0.0.1:8080", {"Authorization": "Bearer "})
    chosen = listen_env() | {"CORRELATOR_URL": "http://correlator:9000", "CORRELATOR_TOKEN": "tok-123"}
    assert exporter(chosen) == ("http://correlator:9000", {"Authorization": "Bearer tok-123"})


RECEIVER = "receivers:\n  otlp:\n    protocols:\n      http:\n        endpoint: 127.0.0.1:0\n"
EXPORTER = "exporters:\n  otlp_http:\n    endpoint: http://127.0.0.1:1\n"
BROKEN_CONFIGS = [
    pytest.param(
        RECEIVER
        + "processors:\n  batch:\n    send_batch_sizee: 100\n"
        + EXPORTER
        + "service:\n  pipelines:\n    traces: {receivers: [otlp], processors: [batch], exporters: [otlp_http]}\n",
        "send_batch_sizee",
        id="misspelt-key",
    ),
    pytest.param(
        RECEIVER + EXPORTER + "service:\n  pipelines:\n    traces: {receivers: [otlp], exporters: [clickhouse/main]}\n",
        "clickhouse/main",
        id="pipeline-names-an-undefined-exporter",
    ),
]


@pytest.mark.parametrize(("text", "named"), BROKEN_CONFIGS)
def test_broken_config_fails_validate_naming_what_is_wrong(
    otelcol: Path, tmp_path: Path, text: str, named: str
) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text(text)
    result = run_collector_command(otelcol, "validate", "--config", str(config), env={})
    assert result.returncode != 0
    assert named in result.stderr, result.stderr


# --- mesh metrics through the prometheus receiver -----------------------------------------------------------

# Istio's standard metrics (istio.io, "Istio Standard Metrics"; the label set of the bookinfo example in its
# Prometheus docs) as an istio-proxy serves them on :15090/stats/prometheus, with one Envoy metric that the
# agent's filter must drop. Istio's default duration buckets.
ISTIO_LABELS = (
    'reporter="destination",source_workload="productpage-v1",source_canonical_service="productpage",'
    'source_canonical_revision="v1",source_workload_namespace="default",'
    'source_principal="spiffe://cluster.local/ns/default/sa/bookinfo-productpage",source_app="productpage",'
    'source_version="v1",source_cluster="Kubernetes",destination_workload="details-v1",'
    'destination_workload_namespace="default",'
    'destination_principal="spiffe://cluster.local/ns/default/sa/bookinfo-details",destination_app="details",'
    'destination_version="v1",destination_service="details.default.svc.cluster.local",'
    'destination_service_name="details",destination_service_namespace="default",'
    'destination_canonical_service="details",destination_canonical_revision="v1",destination_cluster="Kubernetes",'
    'request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",'
    'connection_security_policy="mutual_tls"'
)
ISTIO_LABELS_503 = ISTIO_LABELS.replace('response_code="200"', 'response_code="503"')
ISTIO_BOUNDS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
                1800000, 3600000]  # fmt: skip
ISTIO_CUMULATIVE = [0, 0, 3, 20, 31, 35, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36, 36]


def _histogram_lines(name: str, labels: str, bounds: list[float], cumulative: list[int], total: float) -> str:
    les = [f"{bound:g}" for bound in bounds] + ["+Inf"]
    buckets = "".join(
        f'{name}_bucket{{{labels},le="{le}"}} {count}\n' for le, count in zip(les, cumulative, strict=True)
    )
    return f"{buckets}{name}_sum{{{labels}}} {total}\n{name}_count{{{labels}}} {cumulative[-1]}\n"


ISTIO_PAGE = (
    "# TYPE istio_requests_total counter\n"
    f"istio_requests_total{{{ISTIO_LABELS}}} 36\n"
    f"istio_requests_total{{{ISTIO_LABELS_503}}} 2\n"
    "# TYPE istio_request_duration_milliseconds histogram\n"
    + _histogram_lines("istio_request_duration_milliseconds", ISTIO_LABELS, ISTIO_BOUNDS, ISTIO_CUMULATIVE, 412.5)
    + "# TYPE envoy_cluster_upstream_cx_total counter\n"
    'envoy_cluster_upstream_cx_total{cluster_name="xds-grpc"} 7\n'
)

# Linkerd's proxy metrics (linkerd.io, "Proxy Metrics": request_total, response_total, response_latency_ms with
# direction, authority, tls, the outbound dst_* labels and the response classification) as a linkerd-proxy serves
# them on :4191/metrics, with one process metric that the agent's filter must drop. Linkerd's latency buckets.
LINKERD_OUTBOUND = (
    'direction="outbound",authority="emoji-svc.emojivoto.svc.cluster.local:8080",'
    'target_addr="10.42.0.14:8080",target_ip="10.42.0.14",target_port="8080",dst_control_plane_ns="linkerd",'
    'dst_deployment="emoji",dst_namespace="emojivoto",dst_pod="emoji-7d9c6f8c5b-x2kqv",'
    'dst_pod_template_hash="7d9c6f8c5b",dst_service="emoji-svc",dst_serviceaccount="emoji",'
    'tls="true",server_id="emoji.emojivoto.serviceaccount.identity.linkerd.cluster.local"'
)
LINKERD_INBOUND = (
    'direction="inbound",authority="web-svc.emojivoto.svc.cluster.local:80",target_addr="10.42.0.12:8080",'
    'target_ip="10.42.0.12",target_port="8080",tls="true",'
    'client_id="vote-bot.emojivoto.serviceaccount.identity.linkerd.cluster.local",srv_kind="default",'
    'srv_name="all-unauthenticated",srv_port="8080"'
)
LINKERD_SUCCESS = f'{LINKERD_OUTBOUND},status_code="200",classification="success",grpc_status="0",error=""'
LINKERD_BOUNDS = [1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500, 1000, 2000, 3000, 4000, 5000, 10000,
                  20000, 30000, 40000, 50000]  # fmt: skip
LINKERD_CUMULATIVE = [0, 4, 60, 200, 380, 500, 521, 527, 530, 530, 530, 530, 530, 530, 530, 530, 530, 530, 530, 530,
                      530, 530, 530, 530, 530, 530]  # fmt: skip

LINKERD_PAGE = (
    "# HELP request_total Total count of HTTP requests.\n# TYPE request_total counter\n"
    f"request_total{{{LINKERD_INBOUND}}} 1756\n"
    f"request_total{{{LINKERD_OUTBOUND}}} 536\n"
    "# HELP response_total Total count of HTTP responses.\n# TYPE response_total counter\n"
    f"response_total{{{LINKERD_SUCCESS}}} 530\n"
    f'response_total{{{LINKERD_OUTBOUND},status_code="500",classification="failure",grpc_status="",error=""}} 6\n'
    "# HELP response_latency_ms Elapsed times between a request's headers being received and its response stream "
    "completing\n# TYPE response_latency_ms histogram\n"
    + _histogram_lines("response_latency_ms", LINKERD_SUCCESS, LINKERD_BOUNDS, LINKERD_CUMULATIVE, 2410)
    + "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total 12.5\n"
)


def agent_mesh_config(
    otelcol: Path, kubeconfig: Path, correlator: Server, target: str, job_prefix: str, env: dict[str, str]
) -> dict[str, Any]:
    """agent.yaml's mesh pipeline as shipped (its two jobs' metrics paths and metric filters, its scrape-target
    transform), scraping `target` every second into the correlator; the static labels stand for what the
    agent's Kubernetes relabeling adds, which needs a cluster."""
    agent = resolved_config(otelcol, CONFIG_DIR / "agent.yaml", shipped_config_env("agent.yaml", kubeconfig))
    shipped = {job["job_name"]: job for job in agent["receivers"]["prometheus/mesh"]["config"]["scrape_configs"]}
    assert set(shipped) == {"istio-proxy", "linkerd-proxy"}
    assert "transform/scrape_target" in agent["service"]["pipelines"]["metrics/mesh"]["processors"]
    transform = agent["processors"]["transform/scrape_target"]
    labels = {
        "istio-proxy": {"namespace": "default", "pod": "details-v1-7f4669bdd9-dg7vn"},
        "linkerd-proxy": {"namespace": "emojivoto", "pod": "web-5f86686c4d-58p7k", "deployment": "web"},
    }
    jobs = [
        {
            "job_name": f"{job_prefix}-{name}",
            "scrape_interval": "1s",
            "metrics_path": job["metrics_path"],
            "metric_relabel_configs": job["metric_relabel_configs"],
            "static_configs": [{"targets": [target], "labels": labels[name]}],
        }
        for name, job in shipped.items()
    ]
    return escape_dollars({
        "extensions": {"health_check": {"endpoint": env["OTELCOL_HEALTH_ENDPOINT"]}},
        "receivers": {"prometheus/mesh": {"config": {"scrape_configs": jobs}}},
        "processors": {
            "transform/scrape_target": {
                "error_mode": transform["error_mode"],
                "metric_statements": [
                    {"context": group["context"], "statements": group["statements"]}
                    for group in transform["metric_statements"]
                ],
            },
            "batch": {"timeout": "200ms"},
        },
        "exporters": {"otlp_http/correlator": {"endpoint": correlator.url()}},
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"metrics": {"level": "none"}},
            "pipelines": {"metrics": {
                "receivers": ["prometheus/mesh"],
                "processors": ["transform/scrape_target", "batch"],
                "exporters": ["otlp_http/correlator"],
            }},
        },
    })  # fmt: skip


def test_istio_and_linkerd_metrics_land_with_their_labels(
    otelcol: Path, server: Server, kubeconfig: Path, tmp_path: Path, service_name: str
) -> None:
    pages = {"/stats/prometheus": ISTIO_PAGE, "/metrics": LINKERD_PAGE}
    with exposition_server(pages) as target:
        env = listen_env()
        config = write_config(
            tmp_path / "mesh.yaml", agent_mesh_config(otelcol, kubeconfig, server, target, service_name, env)
        )
        with running_collector(otelcol, config, env, tmp_path) as collector:
            istio, linkerd = f"{service_name}-istio-proxy", f"{service_name}-linkerd-proxy"

            def landed() -> bool:
                counts = query(
                    server,
                    """
                    SELECT (SELECT uniqExact(MetricName, Attributes) FROM otel.otel_metrics_sum
                            WHERE ServiceName IN ({istio:String}, {linkerd:String})),
                           (SELECT uniqExact(MetricName, Attributes) FROM otel.otel_metrics_histogram
                            WHERE ServiceName IN ({istio:String}, {linkerd:String}))
                    """,
                    istio=istio,
                    linkerd=linkerd,
                )[0]
                # Two Istio and four Linkerd counter series; one histogram each.
                return counts == (6, 2)

            wait_for(landed, what="the mesh series in otel_metrics_sum and otel_metrics_histogram", log=collector.log)

    sums = query(
        server,
        """
        SELECT ServiceName, MetricName, Attributes, Value, AggregationTemporality, IsMonotonic, ResourceAttributes
        FROM otel.otel_metrics_sum WHERE ServiceName IN ({istio:String}, {linkerd:String})
        ORDER BY TimeUnix DESC LIMIT 1 BY MetricName, Attributes
        """,
        istio=istio,
        linkerd=linkerd,
    )
    by_key = {(row[1], row[2].get("response_code") or row[2].get("classification") or row[2]["direction"]): row
              for row in sums}  # fmt: skip
    assert set(by_key) == {
        ("istio_requests_total", "200"), ("istio_requests_total", "503"),
        ("request_total", "inbound"), ("request_total", "outbound"),
        ("response_total", "success"), ("response_total", "failure"),
    }  # fmt: skip

    service, _, attributes, value, temporality, monotonic, resource = by_key[("istio_requests_total", "200")]
    assert service == istio
    assert attributes["reporter"] == "destination"
    assert (attributes["source_workload"], attributes["destination_workload"]) == ("productpage-v1", "details-v1")
    assert attributes["connection_security_policy"] == "mutual_tls"
    assert attributes["namespace"] == "default"  # the target's labels ride along, as Kubernetes relabeling adds them
    assert (value, temporality, monotonic) == (36.0, 2, True)  # cumulative, as SCHEMA.md says scraped counters are
    assert resource["service.instance.id"] == target
    # agent.yaml's transform/scrape_target names the scraped pod by its IP, for k8s_attributes to find it.
    assert resource["k8s.pod.ip"] == "127.0.0.1"
    assert by_key[("istio_requests_total", "503")][3] == 2.0

    _, _, attributes, value, *_ = by_key[("request_total", "inbound")]
    assert (attributes["tls"], attributes["direction"]) == ("true", "inbound")
    assert attributes["authority"] == "web-svc.emojivoto.svc.cluster.local:80"
    assert value == 1756.0
    _, _, attributes, value, *_ = by_key[("response_total", "failure")]
    assert (attributes["deployment"], attributes["dst_deployment"], attributes["status_code"]) == (
        "web",
        "emoji",
        "500",
    )
    assert value == 6.0

    histograms = query(
        server,
        """
        SELECT MetricName, Attributes, Count, Sum, BucketCounts, ExplicitBounds, AggregationTemporality
        FROM otel.otel_metrics_histogram WHERE ServiceName IN ({istio:String}, {linkerd:String})
        ORDER BY TimeUnix DESC LIMIT 1 BY MetricName
        """,
        istio=istio,
        linkerd=linkerd,
    )
    by_name = {row[0]: row for row in histograms}
    assert set(by_name) == {"istio_request_duration_milliseconds", "response_latency_ms"}
    _, attributes, count, total, buckets, bounds, temporality = by_name["istio_request_duration_milliseconds"]
    assert (attributes["reporter"], attributes["destination_workload"]) == ("destination", "details-v1")
    assert (count, total, temporality) == (36, 412.5, 2)
    assert bounds == [float(bound) for bound in ISTIO_BOUNDS]
    # OTLP buckets count per bucket; Prometheus' count cumulatively.
    assert buckets == [c - p for c, p in zip(ISTIO_CUMULATIVE, [0, *ISTIO_CUMULATIVE[:-1]], strict=True)]
    _, attributes, count, total, buckets, bounds, _ = by_name["response_latency_ms"]
    assert (attributes["direction"], attributes["classification"], attributes["tls"]) == ("outbound", "success", "true")
    assert (count, total, sum(buckets), bounds[-1]) == (530, 2410.0, 530, 50000.0)

    # The agent's metric filters keep the mesh's request metrics and nothing else of the sidecars.
    dropped = query(
        server,
        """
        SELECT count() FROM otel.otel_metrics_sum
        WHERE ServiceName IN ({istio:String}, {linkerd:String})
          AND MetricName NOT IN ('istio_requests_total', 'request_total', 'response_total')
        """,
        istio=istio,
        linkerd=linkerd,
    )
    assert dropped == [(0,)]


def test_agent_names_an_ipv6_scrape_target_by_its_pod_ip(
    otelcol: Path, server: Server, kubeconfig: Path, tmp_path: Path, service_name: str
) -> None:
    with exposition_server({"/stats/prometheus": ISTIO_PAGE}, host="::1") as target:
        env = listen_env()
        config = agent_mesh_config(otelcol, kubeconfig, server, target, service_name, env)
        with running_collector(otelcol, write_config(tmp_path / "mesh6.yaml", config), env, tmp_path) as collector:

            def resource() -> dict[str, str]:
                sql = "SELECT ResourceAttributes FROM otel.otel_metrics_sum WHERE ServiceName = {s:String} LIMIT 1"
                rows = query(server, sql, s=f"{service_name}-istio-proxy")
                return dict(rows[0][0]) if rows else {}

            found = wait_for(resource, what="a scraped Istio point from [::1]", log=collector.log)
    assert (found["service.instance.id"], found["k8s.pod.ip"]) == (target, "::1")


# --- end to end through local.yaml --------------------------------------------------------------------------


def run_sdk_app(endpoint: str, service: str) -> dict[str, str]:
    """A service configured with correlator.sdk, in its own process, sending one span, log and counter."""
    result = subprocess.run(
        [sys.executable, "-c", SDK_APP, endpoint, service],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    ids: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return ids


def test_sdk_app_through_local_collector_into_the_correlator(
    otelcol: Path, server: Server, tmp_path: Path, service_name: str
) -> None:
    env = listen_env() | {"CORRELATOR_URL": server.url(), "CORRELATOR_TOKEN": ""}
    with running_collector(otelcol, CONFIG_DIR / "local.yaml", env, tmp_path) as collector:
        ids = run_sdk_app(f"http://{env['OTELCOL_OTLP_HTTP_ENDPOINT']}", service_name)

        def arrived() -> bool:
            counts = query(
                server,
                """
                SELECT (SELECT count() FROM otel.otel_traces WHERE ServiceName = {s:String}),
                       (SELECT count() FROM otel.otel_logs WHERE ServiceName = {s:String}),
                       (SELECT count() FROM otel.otel_metrics_sum WHERE ServiceName = {s:String})
                """,
                s=service_name,
            )[0]
            return all(counts)

        wait_for(arrived, what="the app's span, log and metric in the correlator", log=collector.log)

    expected_resource = {"service.version": "1.2.3", "deployment.id": "d-1", "deployment.environment.name": "staging"}

    def resource_subset(resource: dict[str, str]) -> dict[str, str]:
        return {key: resource.get(key, "<missing>") for key in expected_resource}

    spans = query(
        server,
        "SELECT TraceId, SpanId, SpanName, ResourceAttributes FROM otel.otel_traces WHERE ServiceName = {s:String}",
        s=service_name,
    )
    assert [(t, s, n) for t, s, n, _ in spans] == [(ids["trace_id"], ids["span_id"], "POST /orders")]
    assert resource_subset(spans[0][3]) == expected_resource

    logs = query(
        server,
        "SELECT TraceId, SpanId, Body, SeverityNumber, ResourceAttributes FROM otel.otel_logs "
        "WHERE ServiceName = {s:String}",
        s=service_name,
    )
    assert [(t, s, b, n) for t, s, b, n, _ in logs] == [(ids["trace_id"], ids["span_id"], "order placed", 13)]
    assert resource_subset(logs[0][4]) == expected_resource

    points = query(
        server,
        "SELECT MetricName, Value, Attributes, IsMonotonic, MetricUnit, ResourceAttributes FROM otel.otel_metrics_sum "
        "WHERE ServiceName = {s:String}",
        s=service_name,
    )
    assert [(m, v, a, mono, u) for m, v, a, mono, u, _ in points] == [
        ("orders_placed", 42.0, {"payment.method": "card"}, True, "{order}")
    ]
    assert resource_subset(points[0][5]) == expected_resource


# --- the token ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_server(data_dir: Path) -> Iterator[Server]:
    """A correlator that wants a write token, on the session's store."""
    running = start_server(data_dir, api_tokens="collector-token:write")
    yield running
    running.stop()


def send_one_span(collector_http: str, service: str) -> None:
    """One span through the OpenTelemetry SDK's OTLP/HTTP exporter (a local provider: no globals touched)."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"http://{collector_http}/v1/traces")))
    provider.get_tracer("token-test").start_span("GET /health").end()
    provider.shutdown()


@pytest.mark.parametrize(
    ("token", "lands"), [("collector-token", True), ("", False), ("wrong-token", False)], ids=["token", "none", "wrong"]
)
def test_local_collector_authenticates_with_correlator_token(
    otelcol: Path, token_server: Server, tmp_path: Path, service_name: str, token: str, lands: bool
) -> None:
    env = listen_env() | {"CORRELATOR_URL": token_server.url(), "CORRELATOR_TOKEN": token}
    with running_collector(otelcol, CONFIG_DIR / "local.yaml", env, tmp_path) as collector:
        send_one_span(env["OTELCOL_OTLP_HTTP_ENDPOINT"], service_name)

        def stored() -> int:
            sql = "SELECT count() FROM otel.otel_traces WHERE ServiceName = {s:String}"
            return int(query(token_server, sql, s=service_name)[0][0])

        if lands:
            wait_for(stored, what="the span sent with the right token", log=collector.log)
        else:
            # The exporter's failure is the proof that the request reached the correlator and was refused.
            wait_for(lambda: "401" in collector.log(), what="the collector to log the correlator's 401")
            assert stored() == 0
