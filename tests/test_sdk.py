"""correlator.sdk: resource precedence as pure functions, and services configured by it sending to the real correlator.

OTel providers are process-global, so every configured service runs as a child process (tests/sdk_app.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from correlator.api.server import Server
from correlator.sdk import ServiceIdentity, configure, parse_resource_attributes, resource_attributes
from tests.conftest import free_port, query

REPO = Path(__file__).resolve().parent.parent
PLATFORM_VARIABLES = ("ARGOCD_APP_NAME", "ARGOCD_APP_REVISION", "POD_NAME", "POD_NAMESPACE", "NODE_NAME")
ARGUMENTS = {
    "service_namespace": "shop",
    "service_version": "1.2.3",
    "deployment_id": "d-1",
    "environment": "staging",
    "revision": "0123abcd",
}
SIX = (
    "service.name",
    "service.namespace",
    "service.version",
    "deployment.environment.name",
    "deployment.id",
    "vcs.ref.head.revision",
)


# The standard zero-code launcher, from the same environment as the interpreter running the tests.
LAUNCHER = (str(Path(sys.executable).parent / "opentelemetry-instrument"),)


@dataclass(frozen=True)
class AppRun:
    """What one run of tests/sdk_app.py printed."""

    result: dict[str, Any]
    stderr: str


def run_app(
    scenario: str, arguments: dict[str, Any], env: dict[str, str] | None = None, launcher: tuple[str, ...] = ()
) -> AppRun:
    """Run one scenario of the instrumented app in a fresh process, with only the given telemetry variables set."""
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("OTEL_", "CORRELATOR_")) and name not in PLATFORM_VARIABLES
    }
    environ.update(env or {})
    completed = subprocess.run(
        [*launcher, sys.executable, "-m", "tests.sdk_app", scenario, json.dumps(arguments)],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return AppRun(json.loads(completed.stdout), completed.stderr)


def endpoint(server: Server) -> str:
    return f"http://127.0.0.1:{server.settings.http_port}"


def resource_of_span(server: Server, trace_id: str, span_id: str) -> dict[str, str]:
    rows = query(
        server,
        "SELECT ResourceAttributes FROM otel.otel_traces WHERE TraceId = {trace:String} AND SpanId = {span:String}",
        trace=trace_id,
        span=span_id,
    )
    assert len(rows) == 1
    attributes: dict[str, str] = rows[0][0]
    return attributes


def assert_all_three_signals(server: Server, service: str, run: AppRun) -> None:
    """The span, the log written inside it (carrying its ids) and the counter all reached the store."""
    spans = query(
        server,
        "SELECT TraceId, SpanId, SpanName FROM otel.otel_traces WHERE ServiceName = {svc:String}",
        svc=service,
    )
    assert spans == [(run.result["trace_id"], run.result["span_id"], "checkout")]
    logs = query(
        server,
        "SELECT TraceId, SpanId, Body, SeverityText FROM otel.otel_logs "
        "WHERE ServiceName = {svc:String} AND ScopeName = 'shop'",
        svc=service,
    )
    assert logs == [(run.result["trace_id"], run.result["span_id"], "order placed", "INFO")]
    points = query(
        server,
        "SELECT MetricName, Value FROM otel.otel_metrics_sum WHERE ServiceName = {svc:String}",
        svc=service,
    )
    # A cumulative counter: a flush before shutdown repeats the same total in a second point.
    assert points
    assert set(points) == {("sdk_test_orders", 3.0)}


# --- precedence, in process: pure functions and calls that fail before any provider is set ---------------------


def test_defaults_when_nothing_is_given() -> None:
    assert resource_attributes(ServiceIdentity(), {}) == {
        "service.name": "unknown_service",
        "deployment.environment.name": "production",
    }


@pytest.mark.parametrize(
    ("identity", "environ", "expected"),
    [
        pytest.param(ServiceIdentity(), {"ARGOCD_APP_NAME": "argo"}, "argo", id="platform-over-default"),
        pytest.param(
            ServiceIdentity(),
            {"ARGOCD_APP_NAME": "argo", "CORRELATOR_SERVICE_NAME": "ours"},
            "ours",
            id="correlator-variable-over-platform",
        ),
        pytest.param(
            ServiceIdentity(),
            {"CORRELATOR_SERVICE_NAME": "ours", "OTEL_RESOURCE_ATTRIBUTES": "service.name=attrs"},
            "attrs",
            id="otel-resource-attributes-over-correlator-variable",
        ),
        pytest.param(
            ServiceIdentity(),
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=attrs", "OTEL_SERVICE_NAME": "otel"},
            "otel",
            id="otel-service-name-over-resource-attributes",
        ),
        pytest.param(
            ServiceIdentity(service_name="arg"),
            {"OTEL_SERVICE_NAME": "otel", "CORRELATOR_SERVICE_NAME": "ours", "ARGOCD_APP_NAME": "argo"},
            "arg",
            id="argument-over-everything",
        ),
        pytest.param(
            ServiceIdentity(service_name=""), {"OTEL_SERVICE_NAME": "otel"}, "otel", id="empty-argument-is-unset"
        ),
        pytest.param(
            ServiceIdentity(),
            {"OTEL_SERVICE_NAME": "", "ARGOCD_APP_NAME": "argo"},
            "argo",
            id="empty-variable-is-unset",
        ),
    ],
)
def test_service_name_precedence(identity: ServiceIdentity, environ: dict[str, str], expected: str) -> None:
    assert resource_attributes(identity, environ)["service.name"] == expected


def test_each_attribute_has_its_variable_and_the_platform_ones_fill_in() -> None:
    environ = {
        "CORRELATOR_SERVICE_NAMESPACE": "shop",
        "CORRELATOR_SERVICE_VERSION": "2.0.0",
        "CORRELATOR_ENVIRONMENT": "staging",
        "CORRELATOR_DEPLOYMENT_ID": "d-7",
        "ARGOCD_APP_NAME": "checkout",
        "ARGOCD_APP_REVISION": "feedbeef",
        "POD_NAME": "checkout-7d9f-abcde",
        "POD_NAMESPACE": "payments",
        "NODE_NAME": "node-3",
    }
    assert resource_attributes(ServiceIdentity(), environ) == {
        "service.name": "checkout",
        "service.namespace": "shop",
        "service.version": "2.0.0",
        "deployment.environment.name": "staging",
        "deployment.id": "d-7",
        "vcs.ref.head.revision": "feedbeef",
        "k8s.pod.name": "checkout-7d9f-abcde",
        "k8s.namespace.name": "payments",
        "k8s.node.name": "node-3",
    }
    overridden = resource_attributes(
        ServiceIdentity(revision="cafe"),
        {**environ, "CORRELATOR_REVISION": "0ur5", "OTEL_RESOURCE_ATTRIBUTES": "vcs.ref.head.revision=attrs"},
    )
    assert overridden["vcs.ref.head.revision"] == "cafe"


def test_resource_attributes_variable_is_percent_decoded_and_keeps_extra_keys() -> None:
    parsed = parse_resource_attributes(" team = pay%2Cments , note=a%3Db ,,service.version=1.0,")
    assert parsed == {"team": "pay,ments", "note": "a=b", "service.version": "1.0"}


@pytest.mark.parametrize(
    ("value", "bad_item"),
    [
        pytest.param("service.version", "service.version", id="no-equals"),
        pytest.param("service.name=a,oops,team=x", "oops", id="one-bad-item-among-good"),
        pytest.param("=orphan", "=orphan", id="empty-key"),
    ],
)
def test_malformed_resource_attributes_name_the_variable_and_the_item(
    monkeypatch: pytest.MonkeyPatch, value: str, bad_item: str
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", value)
    # configure() parses the environment before it sets any provider, so this test leaves the process untouched.
    with pytest.raises(ValueError, match="OTEL_RESOURCE_ATTRIBUTES") as raised:
        configure(service_name="never-started")
    assert repr(bad_item) in str(raised.value)


@pytest.mark.parametrize(
    ("argument", "variable", "source"),
    [
        pytest.param("http/json", None, "protocol", id="argument"),
        pytest.param(None, "thrift", "OTEL_EXPORTER_OTLP_PROTOCOL", id="variable"),
    ],
)
def test_unsupported_protocol_is_rejected_with_its_source(
    monkeypatch: pytest.MonkeyPatch, argument: str | None, variable: str | None, source: str
) -> None:
    if variable is not None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", variable)
    with pytest.raises(
        ValueError, match=f"^{source}: expected one of http/protobuf, grpc, got '{argument or variable}'"
    ):
        configure(service_name="never-started", protocol=argument)


def test_sdk_imports_nothing_else_of_the_correlator() -> None:
    code = "import json, sys, correlator.sdk; print(json.dumps([m for m in sys.modules if m.startswith('correlator')]))"
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    loaded = json.loads(completed.stdout)
    assert "correlator.sdk" in loaded
    assert [name for name in loaded if name != "correlator" and not name.startswith("correlator.sdk")] == []


# --- end to end: a child process configured by the SDK sends to the session's correlator --------------------------


@pytest.mark.slow
def test_arguments_win_over_the_environment(server: Server, service_name: str) -> None:
    env = {
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_RESOURCE_ATTRIBUTES": "service.version=0.0.1,deployment.id=d-env,deployment.environment.name=dev",
        "CORRELATOR_SERVICE_NAMESPACE": "env-ns",
        "CORRELATOR_REVISION": "env-rev",
        # The argument's endpoint must win over this one, where nothing listens.
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{free_port()}",
    }
    arguments = {"service_name": service_name, **ARGUMENTS, "endpoint": endpoint(server)}
    run = run_app("emit", arguments, env)

    assert_all_three_signals(server, service_name, run)
    expected = dict(zip(SIX, (service_name, "shop", "1.2.3", "staging", "d-1", "0123abcd"), strict=True))
    attributes = resource_of_span(server, run.result["trace_id"], run.result["span_id"])
    assert {key: attributes.get(key) for key in SIX} == expected
    assert attributes["telemetry.sdk.language"] == "python"
    assert "telemetry.sdk.language" in run.result["resource"]


@pytest.mark.slow
def test_the_environment_fills_what_arguments_leave(server: Server, service_name: str) -> None:
    env = {
        "OTEL_SERVICE_NAME": service_name,
        "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,service.version=2.0.0,team=payments",
        "CORRELATOR_DEPLOYMENT_ID": "d-7",
        "CORRELATOR_ENVIRONMENT": "staging",
        "ARGOCD_APP_REVISION": "feedbeef",
        "POD_NAME": "checkout-7d9f-abcde",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint(server),
    }
    run = run_app("emit", {"service_version": "2.0.1"}, env)

    assert_all_three_signals(server, service_name, run)
    attributes = resource_of_span(server, run.result["trace_id"], run.result["span_id"])
    assert {key: attributes.get(key) for key in SIX} == {
        "service.name": service_name,
        "service.namespace": "shop",
        "service.version": "2.0.1",
        "deployment.environment.name": "staging",
        "deployment.id": "d-7",
        "vcs.ref.head.revision": "feedbeef",
    }
    assert (attributes["team"], attributes["k8s.pod.name"]) == ("payments", "checkout-7d9f-abcde")


@pytest.mark.slow
def test_defaults_when_neither_argument_nor_environment_says(server: Server) -> None:
    run = run_app("emit", {"endpoint": endpoint(server)})

    attributes = resource_of_span(server, run.result["trace_id"], run.result["span_id"])
    assert (attributes["service.name"], attributes["deployment.environment.name"]) == ("unknown_service", "production")
    assert [key for key in SIX[1:] if key in attributes] == ["deployment.environment.name"]


@pytest.mark.slow
def test_grpc_chosen_by_the_environment(server: Server, service_name: str) -> None:
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.ports['otlp_grpc']}",
    }
    run = run_app("emit", {"service_name": service_name}, env)

    assert_all_three_signals(server, service_name, run)


@pytest.mark.slow
def test_configuring_twice_keeps_the_first_setup(server: Server, service_name: str) -> None:
    run = run_app("twice", {"service_name": service_name, "service_version": "1.0.0", "endpoint": endpoint(server)})

    assert run.result["same_object"] is True
    assert run.result["global_is_first"] is True
    assert run.result["root_handlers"] == 1  # one bridge to OTel logs, not one per call
    assert run.result["root_handlers_after_shutdown"] == 0
    assert (run.result["flushed"], run.result["flush_after_shutdown"]) == (True, False)
    assert_all_three_signals(server, service_name, run)
    # The warning about the ignored settings went where the app's logs go, which here is the correlator.
    warnings = query(
        server,
        "SELECT SeverityText, Body FROM otel.otel_logs "
        "WHERE ServiceName = {svc:String} AND ScopeName = 'correlator.sdk._configure'",
        svc=service_name,
    )
    assert len(warnings) == 1
    assert warnings[0][0] == "WARN"
    assert "already configured" in warnings[0][1]
    attributes = resource_of_span(server, run.result["trace_id"], run.result["span_id"])
    assert attributes["service.version"] == "1.0.0"


@pytest.fixture(params=["refused", "silent"])
def dead_endpoint(request: pytest.FixtureRequest) -> Iterator[str]:
    """A collector that is down: a port that refuses connections, or one that accepts and never answers."""
    if request.param == "refused":
        yield f"http://127.0.0.1:{free_port()}"
        return
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        yield f"http://127.0.0.1:{silent.getsockname()[1]}"


@pytest.mark.slow
def test_a_collector_that_is_down_costs_bounded_time_and_no_exception(dead_endpoint: str) -> None:
    run = run_app("collector_down", {"service_name": "down", "endpoint": dead_endpoint, "timeout_s": 0.5})

    # Three signals flushed once and metrics once more at shutdown, each given up after its 0.5 s.
    assert run.result["seconds"] < 8
    for signal in ("spans", "logs", "metrics"):
        assert f"Failed to export {signal} batch" in run.stderr
    assert "INFO:shop:order placed" in run.stderr  # the app's own logging went on working


@pytest.mark.slow
def test_fastapi_requests_and_httpx_are_traced_end_to_end(server: Server, service_name: str) -> None:
    run = run_app("web", {"service_name": service_name, "endpoint": endpoint(server), "port": free_port()})

    assert run.result == {"statuses": [200, 200], "instrumented": ["fastapi", "requests", "httpx"]}
    spans = query(
        server,
        "SELECT TraceId, SpanId, ParentSpanId, SpanKind, ScopeName, SpanAttributes FROM otel.otel_traces "
        "WHERE ServiceName = {svc:String} AND SpanKind IN ('Server', 'Client')",
        svc=service_name,
    )
    clients = {row[4].rsplit(".", 1)[-1]: row for row in spans if row[3] == "Client"}
    servers = [row for row in spans if row[3] == "Server"]
    assert sorted(clients) == ["httpx", "requests"]
    assert len(servers) == 2
    # Each server span is the child of the client span that called it: context crossed the wire.
    assert sorted((row[0], row[2]) for row in servers) == sorted((row[0], row[1]) for row in clients.values())
    assert {row[5].get("http.route") for row in servers} == {"/orders/{order_id}"}
    logs = query(
        server,
        "SELECT TraceId, SpanId, Body FROM otel.otel_logs WHERE ServiceName = {svc:String} AND ScopeName = 'shop' "
        "ORDER BY Body",
        svc=service_name,
    )
    server_spans = {(row[0], row[1]) for row in servers}
    assert [body for *_, body in logs] == ["serving order 1", "serving order 2"]
    assert all((trace_id, span_id) in server_spans for trace_id, span_id, _ in logs)


@pytest.mark.slow
def test_opentelemetry_instrument_without_code_gives_the_same_resource(server: Server, service_name: str) -> None:
    # The recipe of docs/sdk.md, word for word: no configure() call, only variables and the standard launcher.
    env = {
        "OTEL_SERVICE_NAME": service_name,
        "OTEL_RESOURCE_ATTRIBUTES": "service.namespace=shop,service.version=1.2.3,deployment.id=d-1,"
        "deployment.environment.name=staging,vcs.ref.head.revision=0123abcd",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint(server),
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_LOGS_EXPORTER": "otlp",
    }
    run = run_app("plain", {}, env, LAUNCHER)

    assert_all_three_signals(server, service_name, run)
    attributes = resource_of_span(server, run.result["trace_id"], run.result["span_id"])
    expected = dict(zip(SIX, (service_name, "shop", "1.2.3", "staging", "d-1", "0123abcd"), strict=True))
    assert {key: attributes.get(key) for key in SIX} == expected


@pytest.mark.slow
def test_configure_under_opentelemetry_instrument_leaves_the_launcher_in_charge(
    server: Server, service_name: str
) -> None:
    env = {
        "OTEL_SERVICE_NAME": service_name,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint(server),
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_LOGS_EXPORTER": "otlp",
    }
    # configure() asks for another version and endpoint; the launcher's providers, already global, must win alone.
    run = run_app("emit", {"service_version": "9.9.9", "endpoint": f"http://127.0.0.1:{free_port()}"}, env, LAUNCHER)

    assert run.result["instrumented"] == []
    attributes = resource_of_span(server, run.result["trace_id"], run.result["span_id"])
    assert "service.version" not in attributes
    logs = query(
        server,
        "SELECT ScopeName, SeverityText, Body FROM otel.otel_logs WHERE ServiceName = {svc:String}",
        svc=service_name,
    )
    # Only the launcher's handler, at the root logger's untouched WARNING: our INFO record stays out, and the
    # warning arrives once (a second handler of ours would have lowered the level and doubled every record).
    assert len(logs) == 1
    assert logs[0][:2] == ("correlator.sdk._configure", "WARN")
    assert "already set up" in logs[0][2]
