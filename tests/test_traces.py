"""The trace view end to end: spans and logs from the OpenTelemetry SDK, an exemplar as OTLP protobuf, deploys
through the API; `GET /api/v1/traces/{id}` and `correlator trace ID` read them back."""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, NumberDataPoint
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from correlator.api.server import Server
from correlator.correlate.trace_tree import Placed, SpanRef, tree_order
from correlator.store.ddl import InsertSelect
from correlator.store.migrate import target_for
from correlator.store.schema_trace_view import (
    EXEMPLARS_BY_TRACE,
    SPANS_BY_TRACE,
    TRACE_VIEW_EXEMPLARS,
    TRACE_VIEW_TABLES,
)
from tests.factories import key_values
from tests.processes import correlator_command

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns
MS = 1_000_000
PROTOBUF = {"Content-Type": "application/x-protobuf"}


def iso(ns: int) -> str:
    """A time as the API writes it (microseconds, Z)."""
    return datetime.fromtimestamp(ns // 1000 / 1e6, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Sent:
    """What a test sent, to build the expected view from."""

    trace_id: str
    services: dict[str, str]
    spans: dict[str, Span]


def _ids(span: Span) -> tuple[str, str]:
    context = span.get_span_context()
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def send_checkout_trace(server: Server, prefix: str) -> Sent:
    """A checkout across gateway -> orders -> (inventory, payments), payments failing, plus logs of it."""
    names = {role: f"{prefix}-{role}" for role in ("gateway", "orders", "payments", "inventory", "worker")}
    resources = {
        "gateway": {"service.version": "1.0.0", "deployment.id": f"{prefix}-gw-deploy"},
        "orders": {"service.version": "2.0.0"},
        "payments": {"service.version": "3.1.0", "deployment.id": f"{prefix}-pay-deploy"},
        "inventory": {},
        "worker": {"service.version": "0.3.1"},
    }
    endpoint = server.url() + "/v1/traces"
    tracers = {}
    providers = []
    for role in ("gateway", "orders", "payments", "inventory"):
        provider = TracerProvider(resource=Resource.create({"service.name": names[role], **resources[role]}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
        providers.append(provider)
        tracers[role] = provider.get_tracer("checkout")

    def start(role: str, name: str, kind: SpanKind, at_ms: int, parent: Span | None, **attributes: Any) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        return tracers[role].start_span(  # type: ignore[return-value]
            name, context=context, kind=kind, start_time=T0 + at_ms * MS, attributes=attributes or None
        )

    root = start("gateway", "GET /checkout", SpanKind.SERVER, 0, None, **{"http.route": "/checkout"})
    call = start("gateway", "POST orders", SpanKind.CLIENT, 5, root)
    orders = start("orders", "POST /orders", SpanKind.SERVER, 10, call, **{"http.response.status_code": 500})
    # Started after inventory's span, sent before it: the view orders siblings by start, not by arrival.
    charge = start("payments", "charge [visa]", SpanKind.SERVER, 20, orders, amount=12.5)
    reserve = start("inventory", "reserve", SpanKind.CONSUMER, 15, orders)
    render = start("gateway", "render", SpanKind.INTERNAL, 101, root)

    charge.record_exception(ValueError("card declined"), timestamp=T0 + 50 * MS, attributes={"retry": False})
    charge.set_status(Status(StatusCode.ERROR, "card declined"))
    root.set_status(Status(StatusCode.OK))
    charge.end(T0 + 60 * MS)
    reserve.end(T0 + 40 * MS)
    orders.end(T0 + 95 * MS)
    call.end(T0 + 100 * MS)
    render.end(T0 + 118 * MS)
    root.end(T0 + 120 * MS)
    for provider in providers:
        provider.shutdown()

    log_endpoint = server.url() + "/v1/logs"
    logs = [
        ("orders", orders, 12, "order created", SeverityNumber.INFO, "INFO", {"order.id": 7}),
        ("payments", charge, 55, "card declined by issuer", SeverityNumber.ERROR, "ERROR", {}),
        # A worker that only logs, in the root's context (an async audit writer, say).
        ("worker", root, 200, "audit written", SeverityNumber.INFO, "", {}),
        # Two hours after the spans: beyond the view's hour of slack, so not part of it.
        ("worker", root, 2 * 3_600_000, "audit replayed", SeverityNumber.INFO, "", {}),
    ]
    for role, span, at_ms, body, severity, severity_text, attributes in logs:
        log_provider = LoggerProvider(resource=Resource.create({"service.name": names[role], **resources[role]}))
        log_provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=log_endpoint)))
        log_provider.get_logger("checkout.logs").emit(
            timestamp=T0 + at_ms * MS,
            context=trace.set_span_in_context(span),
            body=body,
            severity_number=severity,
            severity_text=severity_text or None,
            attributes=attributes or None,
        )
        log_provider.shutdown()
    spans = {"root": root, "call": call, "orders": orders, "charge": charge, "reserve": reserve, "render": render}
    return Sent(_ids(root)[0], names, spans)


def exemplar_request(service: str, trace_id: str, span_id: str, point_ns: int) -> ExportMetricsServiceRequest:
    """A Sum point of `service` carrying an exemplar of the trace and one of another trace."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(key_values({"service.name": service}))
    metric = resource_metrics.scope_metrics.add().metrics.add()
    metric.name = "payments.charges"
    metric.sum.aggregation_temporality = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA
    metric.sum.is_monotonic = True
    point = metric.sum.data_points.add()
    point.start_time_unix_nano = point_ns - 60_000 * MS
    point.time_unix_nano = point_ns
    point.as_double = 3
    ours = point.exemplars.add()
    ours.time_unix_nano = T0 + 55 * MS
    ours.as_double = 40.5
    ours.trace_id = bytes.fromhex(trace_id)
    ours.span_id = bytes.fromhex(span_id)
    other = point.exemplars.add()
    other.time_unix_nano = T0 + 56 * MS
    other.as_int = 9
    other.trace_id = bytes(range(16))
    other.span_id = bytes(range(8))
    return request


def post_deploy(server: Server, **body: Any) -> str:
    response = httpx.post(server.url() + "/api/v1/deploys", json=body)
    assert response.status_code in (200, 201), response.text
    deploy_id: str = response.json()["deploy_id"]
    return deploy_id


@pytest.fixture
def prefix() -> str:
    return f"tv-{uuid.uuid4().hex[:8]}"


def test_a_trace_across_four_services_with_logs_exemplars_and_deploys(server: Server, prefix: str) -> None:
    before = datetime.fromtimestamp(T0 / 1e9, UTC)
    gateway_deploy = post_deploy(
        server, deploy_id=f"{prefix}-gw-deploy", service=f"{prefix}-gateway", version="1.0.0",
        started_at=(before - timedelta(hours=1)).isoformat(),
    )  # fmt: skip
    orders_deploy = post_deploy(
        server, service=f"{prefix}-orders", version="2.0.0", started_at=(before - timedelta(minutes=30)).isoformat()
    )
    # The same version deployed again after the trace (a config change): not what the trace ran.
    later = post_deploy(
        server, service=f"{prefix}-orders", version="2.0.0", started_at=(before + timedelta(hours=1)).isoformat()
    )
    assert later != orders_deploy
    sent = send_checkout_trace(server, prefix)
    s, names = sent.spans, sent.services
    _, charge_id = _ids(s["charge"])
    metrics = exemplar_request(names["payments"], sent.trace_id, charge_id, T0 + 60_000 * MS)
    # Sent twice, as a cumulative point repeats its exemplars on every export: the view shows it once.
    for _ in range(2):
        sent_metrics = httpx.post(server.url() + "/v1/metrics", content=metrics.SerializeToString(), headers=PROTOBUF)
        assert sent_metrics.is_success
    # The same exemplar on a point stamped a day later is outside the trace's window: not read.
    late = exemplar_request(names["payments"], sent.trace_id, charge_id, T0 + 86_400_000 * MS)
    assert httpx.post(server.url() + "/v1/metrics", content=late.SerializeToString(), headers=PROTOBUF).is_success

    response = httpx.get(f"{server.url()}/api/v1/traces/{sent.trace_id}")
    assert response.status_code == 200, response.text
    worker_deploys = httpx.get(
        server.url() + "/api/v1/deploys",
        params={"service": names["worker"], "since": "2025-12-31T00:00:00Z", "until": "2026-01-02T00:00:00Z"},
    )
    [worker_deploy] = worker_deploys.json()["deploys"]  # found in its logs' telemetry
    assert worker_deploy["source"] == "telemetry"

    def span_id(key: str) -> str:
        return _ids(s[key])[1]

    def span(key: str, service: str, name: str, kind: str, start_ms: int, end_ms: int, **extra: Any) -> dict[str, Any]:
        parent = s[key].parent
        return {
            "span_id": span_id(key),
            "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
            "service": names[service],
            "name": name,
            "kind": kind,
            "start": iso(T0 + start_ms * MS),
            "duration_ms": float(end_ms - start_ms),
            "status_code": extra.get("status_code", "Unset"),
            "status_message": extra.get("status_message"),
            "attributes": extra.get("attributes", {}),
            "events": extra.get("events", []),
        }

    assert response.json() == {
        "trace_id": sent.trace_id,
        "started_at": iso(T0),
        "duration_ms": 120.0,
        "error": True,
        "services": [names[r] for r in ("gateway", "orders", "inventory", "payments", "worker")],
        "spans": [
            span(
                "root",
                "gateway",
                "GET /checkout",
                "Server",
                0,
                120,
                status_code="Ok",
                attributes={"http.route": "/checkout"},
            ),
            span("call", "gateway", "POST orders", "Client", 5, 100),
            span("orders", "orders", "POST /orders", "Server", 10, 95, attributes={"http.response.status_code": "500"}),
            span("reserve", "inventory", "reserve", "Consumer", 15, 40),
            span(
                "charge",
                "payments",
                "charge [visa]",
                "Server",
                20,
                60,
                status_code="Error",
                status_message="card declined",
                attributes={"amount": "12.5"},
                events=[
                    {
                        "at": iso(T0 + 50 * MS),
                        "name": "exception",
                        "attributes": {
                            "exception.type": "ValueError",
                            "exception.message": "card declined",
                            "exception.stacktrace": "ValueError: card declined\n",
                            "exception.escaped": "False",
                            "retry": "false",
                        },
                    }
                ],
            ),
            span("render", "gateway", "render", "Internal", 101, 118),
        ],
        "logs": [
            {
                "timestamp": iso(T0 + 12 * MS),
                "service": names["orders"],
                "severity_text": "INFO",
                "severity_number": 9,
                "body": "order created",
                "span_id": span_id("orders"),
                "attributes": {"order.id": "7"},
            },
            {
                "timestamp": iso(T0 + 55 * MS),
                "service": names["payments"],
                "severity_text": "ERROR",
                "severity_number": 17,
                "body": "card declined by issuer",
                "span_id": span_id("charge"),
                "attributes": {},
            },
            {
                "timestamp": iso(T0 + 200 * MS),
                "service": names["worker"],
                "severity_text": None,
                "severity_number": 9,
                "body": "audit written",
                "span_id": span_id("root"),
                "attributes": {},
            },
        ],
        "exemplars": [
            # Exemplar times are stored in whole seconds (SCHEMA.md).
            {
                "metric": "payments.charges",
                "service": names["payments"],
                "value": 40.5,
                "at": iso(T0),
                "span_id": charge_id,
            },
        ],
        "deploys": [
            {"service": names["gateway"], "version": "1.0.0", "deploy_id": gateway_deploy},
            {"service": names["orders"], "version": "2.0.0", "deploy_id": orders_deploy},
            {"service": names["inventory"], "version": None, "deploy_id": None},
            # Never posted: the implicit deploy found in telemetry carries its deployment.id.
            {"service": names["payments"], "version": "3.1.0", "deploy_id": f"{prefix}-pay-deploy"},
            {"service": names["worker"], "version": "0.3.1", "deploy_id": worker_deploy["deploy_id"]},
        ],
    }

    upper = httpx.get(f"{server.url()}/api/v1/traces/{sent.trace_id.upper()}")
    assert upper.status_code == 200
    assert upper.json() == response.json()


def test_spans_by_trace_holds_each_span_as_migration_5_copies_it(server: Server, prefix: str) -> None:
    """The view keeping spans_by_trace writes what migration 5's copy of older spans writes: the same select, and
    of the resource only the attributes that say which deploy produced the span."""
    assert server.state is not None
    store = server.state.store
    sent = send_checkout_trace(server, prefix)
    [copy] = [op for op in TRACE_VIEW_TABLES.operations if isinstance(op, InsertSelect)]
    select = copy.select_sql(target_for(store.config.database))
    parameters = {"trace_id": sent.trace_id}
    kept = store.rows(
        f"SELECT * FROM {store.table(SPANS_BY_TRACE)} WHERE TraceId = {{trace_id:String}} ORDER BY ALL", parameters
    )
    copied = store.rows(f"SELECT * FROM ({select}) WHERE TraceId = {{trace_id:String}} ORDER BY ALL", parameters)
    assert kept == copied
    assert len(kept) == 6
    deploy_attributes = {row[4]: row[-1] for row in kept}  # ServiceName, DeployAttributes
    assert deploy_attributes == {
        sent.services["gateway"]: {"service.version": "1.0.0", "deployment.id": f"{prefix}-gw-deploy"},
        sent.services["orders"]: {"service.version": "2.0.0"},
        sent.services["payments"]: {"service.version": "3.1.0", "deployment.id": f"{prefix}-pay-deploy"},
        sent.services["inventory"]: {},
    }


def test_exemplars_by_trace_holds_each_exemplar_as_migration_6_copies_it(server: Server, prefix: str) -> None:
    """The views keeping exemplars_by_trace write what migration 6's copy of older points writes (one row per
    exemplar, from each metric type that has them), and nothing for exemplars outside a sampled span."""
    assert server.state is not None
    store = server.state.store
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    service = f"{prefix}-metrics"
    sum_point = exemplar_request(service, trace_id, span_id, T0 + 60_000 * MS)
    # The same exemplars on a gauge: the gauge's view writes them too.
    gauge_point = exemplar_request(service, trace_id, span_id, T0 + 60_000 * MS)
    metric = gauge_point.resource_metrics[0].scope_metrics[0].metrics[0]
    point = NumberDataPoint()
    point.CopyFrom(metric.sum.data_points[0])
    metric.ClearField("sum")
    metric.gauge.data_points.append(point)
    metric.name = "payments.in_flight"
    unsampled = exemplar_request(service, trace_id, span_id, T0 + 120_000 * MS)
    for exemplar in unsampled.resource_metrics[0].scope_metrics[0].metrics[0].sum.data_points[0].exemplars:
        exemplar.trace_id, exemplar.span_id = bytes(16), bytes(8)
    for request in (sum_point, gauge_point, unsampled):
        response = httpx.post(server.url() + "/v1/metrics", content=request.SerializeToString(), headers=PROTOBUF)
        assert response.is_success, response.text
    table = store.table(EXEMPLARS_BY_TRACE)
    [copy] = [op for op in TRACE_VIEW_EXEMPLARS.operations if isinstance(op, InsertSelect)]
    select = copy.select_sql(target_for(store.config.database))
    parameters = {"service": service}
    kept = store.rows(f"SELECT * FROM {table} WHERE ServiceName = {{service:String}} ORDER BY ALL", parameters)
    copied = store.rows(f"SELECT * FROM ({select}) WHERE ServiceName = {{service:String}} ORDER BY ALL", parameters)
    assert kept == copied
    assert sorted((row[0], row[3], row[5]) for row in kept) == [
        ("000102030405060708090a0b0c0d0e0f", "payments.charges", 9.0),
        ("000102030405060708090a0b0c0d0e0f", "payments.in_flight", 9.0),
        (trace_id, "payments.charges", 40.5),
        (trace_id, "payments.in_flight", 40.5),
    ]


@pytest.mark.parametrize("missing", ["spans_by_trace", "otel_traces_trace_id_ts"])
def test_the_view_is_the_same_when_the_copy_or_the_lookup_lacks_the_trace(
    server: Server, prefix: str, missing: str
) -> None:
    """Without the trace in spans_by_trace (a cluster's spans stored before migration 5: docs/cluster.md), the view
    reads otel_traces in the lookup table's range; without it in the lookup table, the spans say where its logs
    are. Either way the answer is the one both give."""
    assert server.state is not None
    store = server.state.store
    sent = send_checkout_trace(server, prefix)
    url = f"{server.url()}/api/v1/traces/{sent.trace_id}"
    whole = httpx.get(url)
    assert whole.status_code == 200, whole.text
    assert len(whole.json()["spans"]) == 6
    assert len(whole.json()["logs"]) == 3
    parameters = {"trace_id": sent.trace_id}
    count = f"SELECT count() FROM {store.table(missing)} WHERE TraceId = {{trace_id:String}}"
    assert store.rows(count, parameters)[0][0] > 0
    store.command(f"DELETE FROM {store.table(missing)} WHERE TraceId = {{trace_id:String}}", parameters)
    assert store.rows(count, parameters) == [(0,)]
    assert httpx.get(url).json() == whole.json()


@pytest.mark.parametrize(
    ("trace_id", "status", "message"),
    [
        pytest.param("abc", 400, "expected a trace id of 32 hex digits, got 'abc'", id="short"),
        pytest.param("g" * 32, 400, f"expected a trace id of 32 hex digits, got '{'g' * 32}'", id="not-hex"),
        pytest.param("ab" * 17, 400, f"expected a trace id of 32 hex digits, got '{'ab' * 17}'", id="long"),
        pytest.param("0f" * 16, 404, f"no trace with id '{'0f' * 16}'", id="unknown"),
    ],
)
def test_malformed_and_unknown_ids(server: Server, trace_id: str, status: int, message: str) -> None:
    response = httpx.get(f"{server.url()}/api/v1/traces/{trace_id}")
    assert response.status_code == status
    assert response.json()["error"]["message"] == message


def _cli(server: Server, *args: str) -> subprocess.CompletedProcess[str]:
    # A wide terminal, as a person would have: rich wraps to 80 columns when it cannot tell.
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        correlator_command("trace", *args, "--url", server.url()), capture_output=True, text=True, timeout=60, env=env
    )


def test_the_cli_prints_the_tree_and_fails_with_the_servers_message(server: Server, prefix: str) -> None:
    sent = send_checkout_trace(server, prefix)
    shown = _cli(server, sent.trace_id.upper())
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert sent.trace_id in lines[0]
    for role in ("gateway", "orders", "payments", "inventory", "worker"):
        assert sent.services[role] in shown.stdout
    # Depth first with indentation: the charge sits two levels under the root's child call.
    charge = next(line for line in lines if "charge [visa]" in line)
    assert f"{sent.services['payments']} · charge [visa] · Server · 40 ms · Error: card declined" in charge
    root = next(line for line in lines if "GET /checkout" in line)
    assert charge.index(sent.services["payments"]) > root.index(sent.services["gateway"])
    assert any("card declined by issuer" in line for line in lines)
    assert any(line.strip().endswith("· no stored deploy") for line in lines)

    as_json = _cli(server, sent.trace_id, "--json")
    assert as_json.returncode == 0
    assert '"trace_id": "' + sent.trace_id + '"' in as_json.stdout

    unknown = _cli(server, "0e" * 16)
    assert unknown.returncode == 1
    assert f"no trace with id '{'0e' * 16}' (404 not_found)" in unknown.stderr


def _ref(span_id: str, parent: str | None, start: int) -> SpanRef:
    return SpanRef(span_id, parent, start)


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        pytest.param(
            [_ref("c", "a", 3), _ref("a", None, 0), _ref("b", "a", 1), _ref("d", "b", 2)],
            [Placed(1, 0, None), Placed(2, 1, 1), Placed(3, 2, 2), Placed(0, 1, 1)],
            id="depth-first-siblings-by-start",
        ),
        pytest.param(
            [_ref("a", None, 0), _ref("x", "missing", 1), _ref("y", "x", 2)],
            [Placed(0, 0, None), Placed(1, 1, 0), Placed(2, 2, 1)],
            id="orphans-under-the-root",
        ),
        pytest.param(
            [_ref("x", "missing", 5), _ref("y", "gone", 1)],
            [Placed(1, 0, None), Placed(0, 0, None)],
            id="no-root-orphans-are-roots",
        ),
        pytest.param(
            [_ref("a", None, 0), _ref("a", None, 0), _ref("b", "a", 1)],
            [Placed(0, 0, None), Placed(2, 1, 0)],
            id="duplicate-span-kept-once",
        ),
        pytest.param(
            [_ref("a", None, 0), _ref("p", "q", 1), _ref("q", "p", 2)],
            [Placed(0, 0, None), Placed(1, 0, None), Placed(2, 0, None)],
            id="cycle-kept-at-the-end",
        ),
        pytest.param(
            [_ref("s", "s", 0), _ref("r", None, 1)],
            [Placed(1, 0, None), Placed(0, 1, 1)],
            id="own-parent-is-an-orphan",
        ),
    ],
)
def test_tree_order(spans: list[SpanRef], expected: list[Placed]) -> None:
    assert tree_order(spans) == expected
