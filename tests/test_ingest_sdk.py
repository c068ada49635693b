"""End to end: the OpenTelemetry SDK's own OTLP exporters send to a running server; every column is checked."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from correlator.api.server import Server
from tests.conftest import query
from tests.factories import T0

EXPORTERS = ["http", "grpc"]


def _span_exporter(server: Server, transport: str) -> HttpSpanExporter | GrpcSpanExporter:
    if transport == "http":
        return HttpSpanExporter(endpoint=server.url("otlp_http") + "/v1/traces")
    return GrpcSpanExporter(endpoint=f"127.0.0.1:{server.ports['otlp_grpc']}", insecure=True)


def _resource(service: str) -> Resource:
    return Resource.create(
        {"service.name": service, "service.version": "2.1.0", "deployment.id": "deploy-42", "host.cpu": 4}
    )


@pytest.mark.parametrize("transport", EXPORTERS)
def test_spans_arrive_column_for_column(any_path_server: Server, service_name: str, transport: str) -> None:
    server = any_path_server
    provider = TracerProvider(resource=_resource(service_name))
    provider.add_span_processor(SimpleSpanProcessor(_span_exporter(server, transport)))
    tracer = provider.get_tracer("checkout.tracer", "3.4.5")
    linked = SpanContext(
        trace_id=0xABCDEF0123456789ABCDEF0123456789, span_id=0x1122334455667788, is_remote=True,
        trace_flags=TraceFlags(1),
    )  # fmt: skip
    root = tracer.start_span(
        "POST /pay",
        kind=SpanKind.SERVER,
        start_time=T0,
        attributes={
            "http.response.status_code": 500, "ratio": 0.25, "big": 1e21, "tiny": 1e-7, "whole": 123.0,
            "ok": False, "route": "/pay", "tags": ["a", "b"], "codes": [1, 2], "flags": [True, False],
            "weights": [0.5, 2.0],
        },
        links=[Link(linked, {"link.kind": "follows"})],
    )  # fmt: skip
    root.add_event("exception", {"exception.type": "ValueError", "exception.message": "bad card"}, timestamp=T0 + 500)
    root.add_event("retry", timestamp=T0 + 900)
    root.set_status(Status(StatusCode.ERROR, "payment failed"))
    with trace.use_span(root):
        child = tracer.start_span("SELECT orders", kind=SpanKind.CLIENT, start_time=T0 + 1_000)
        child.end(end_time=T0 + 3_000)
    root.end(end_time=T0 + 2_500_000)
    provider.shutdown()

    rows = query(
        server,
        """
        SELECT toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, ParentSpanId, TraceState, SpanName, SpanKind,
               ServiceName, ResourceAttributes, ScopeName, ScopeVersion, SpanAttributes, Duration, StatusCode,
               StatusMessage, arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Events.Name,
               Events.Attributes, Links.TraceId, Links.SpanId, Links.TraceState, Links.Attributes
        FROM otel.otel_traces WHERE ServiceName = {service:String} ORDER BY Timestamp
        """,
        service=service_name,
    )
    assert len(rows) == 2
    root_row, child_row = rows
    trace_id = format(root.get_span_context().trace_id, "032x")
    assert root_row[0] == T0
    assert root_row[1] == trace_id
    assert root_row[2] == format(root.get_span_context().span_id, "016x")
    assert root_row[3] == ""  # a root span's all-zero parent is written as ''
    assert root_row[4:8] == ("", "POST /pay", "Server", service_name)
    assert root_row[8]["service.name"] == service_name
    assert root_row[8]["deployment.id"] == "deploy-42"
    assert root_row[8]["host.cpu"] == "4"
    assert root_row[9:11] == ("checkout.tracer", "3.4.5")
    assert root_row[11] == {
        "http.response.status_code": "500", "ratio": "0.25", "big": "1e+21", "tiny": "1e-7", "whole": "123",
        "ok": "false", "route": "/pay", "tags": '["a","b"]', "codes": "[1,2]", "flags": "[true,false]",
        "weights": "[0.5,2]",
    }  # fmt: skip
    assert root_row[12] == 2_500_000
    assert root_row[13:15] == ("Error", "payment failed")
    assert root_row[15] == [T0 + 500, T0 + 900]
    assert root_row[16] == ["exception", "retry"]
    assert root_row[17] == [{"exception.type": "ValueError", "exception.message": "bad card"}, {}]
    assert root_row[18:20] == (["abcdef0123456789abcdef0123456789"], ["1122334455667788"])
    assert root_row[20] == [""]
    assert root_row[21] == [{"link.kind": "follows"}]
    assert child_row[1] == trace_id
    assert child_row[3] == root_row[2]
    assert child_row[5:7] == ("SELECT orders", "Client")
    assert child_row[12] == 2_000
    assert child_row[13] == "Unset"

    lookup = query(
        server,
        "SELECT toUnixTimestamp(min(Start)), toUnixTimestamp(max(End)) FROM otel.otel_traces_trace_id_ts "
        "WHERE TraceId = {trace_id:String}",
        trace_id=trace_id,
    )
    assert lookup == [(T0 // 10**9, T0 // 10**9)]


@pytest.mark.parametrize("transport", EXPORTERS)
def test_logs_keep_trace_context_and_structured_bodies(
    any_path_server: Server, service_name: str, transport: str
) -> None:
    server = any_path_server
    exporter = (
        HttpLogExporter(endpoint=server.url("otlp_http") + "/v1/logs")
        if transport == "http"
        else GrpcLogExporter(endpoint=f"127.0.0.1:{server.ports['otlp_grpc']}", insecure=True)
    )
    logger_provider = LoggerProvider(resource=_resource(service_name))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    tracer_provider = TracerProvider(resource=_resource(service_name))
    tracer = tracer_provider.get_tracer("t")
    otel_logger = logger_provider.get_logger("payments.audit", "0.9")
    with tracer.start_as_current_span("handle") as current:
        context = current.get_span_context()
        # No context given: the SDK takes the current span's, as a logging bridge does.
        otel_logger.emit(body="card visa declined", severity_number=SeverityNumber.ERROR, severity_text="ERROR")
        otel_logger.emit(
            timestamp=T0,
            body={"order": 7, "items": ["a", "b"], "paid": False, "note": "<tag> & more"},
            severity_number=SeverityNumber.WARN,
            severity_text="WARN",
            attributes={"user.id": 99},
            event_name="payment.declined",
        )
    otel_logger.emit(observed_timestamp=T0 + 5, body="no time, only observed", severity_number=SeverityNumber.INFO)
    logger_provider.shutdown()

    rows = query(
        server,
        """
        SELECT toUnixTimestamp64Nano(Timestamp), TraceId, SpanId, TraceFlags, SeverityText, SeverityNumber,
               ServiceName, Body, ResourceAttributes, ScopeName, ScopeVersion, LogAttributes, EventName,
               `__otel_materialized_k8s.pod.name`
        FROM otel.otel_logs WHERE ServiceName = {service:String} ORDER BY Body
        """,
        service=service_name,
    )
    assert len(rows) == 3
    by_body = {row[7]: row for row in rows}
    trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    bridged = by_body["card visa declined"]
    assert bridged[1:3] == (trace_id, span_id)
    assert bridged[3] & 1 == 1  # sampled; newer SDKs also set the W3C random-trace-id bit
    assert bridged[4:7] == ("ERROR", 17, service_name)
    assert bridged[11] == {}
    structured = by_body['{"items":["a","b"],"note":"\\u003ctag\\u003e \\u0026 more","order":7,"paid":false}']
    assert structured[0] == T0
    assert structured[1:3] == (trace_id, span_id)
    assert structured[4:7] == ("WARN", 13, service_name)
    assert structured[8]["service.version"] == "2.1.0"
    assert structured[9:11] == ("payments.audit", "0.9")
    assert structured[11] == {"user.id": "99"}
    assert structured[12] == "payment.declined"
    assert structured[13] == ""
    observed = by_body["no time, only observed"]
    assert observed[0] == T0 + 5  # no time_unix_nano: the observed time stands in
    assert observed[1:3] == ("", "")


@pytest.mark.parametrize("transport", EXPORTERS)
def test_metrics_of_every_sdk_type_with_exemplars(server: Server, service_name: str, transport: str) -> None:
    exporter = (
        HttpMetricExporter(endpoint=server.url("otlp_http") + "/v1/metrics")
        if transport == "http"
        else GrpcMetricExporter(endpoint=f"127.0.0.1:{server.ports['otlp_grpc']}", insecure=True)
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    provider = MeterProvider(
        resource=_resource(service_name),
        metric_readers=[reader],
        views=[View(instrument_name="payload.size", aggregation=ExponentialBucketHistogramAggregation())],
    )
    meter = provider.get_meter("payments.meter", "1.1")
    tracer = TracerProvider().get_tracer("t")
    requests = meter.create_counter("http.requests", unit="1", description="requests served")
    inflight = meter.create_up_down_counter("http.inflight")
    temperature = meter.create_gauge("cpu.temperature", unit="Cel")
    latency = meter.create_histogram("http.duration", unit="ms")
    size = meter.create_histogram("payload.size", unit="By")
    with tracer.start_as_current_span("measured") as current:
        context = current.get_span_context()
        requests.add(3, {"route": "/pay"})
        latency.record(12.5, {"route": "/pay"})
        latency.record(250.0, {"route": "/pay"})
    requests.add(2, {"route": "/pay"})
    inflight.add(5)
    inflight.add(-2)
    temperature.set(71.5, {"core": "0"})
    for value in (1.0, 2.0, 4.0, 1024.0):
        size.record(value)
    provider.shutdown()

    sums = query(
        server,
        "SELECT MetricName, Value, IsMonotonic, AggregationTemporality, Attributes, MetricDescription, MetricUnit, "
        "ScopeName, ScopeVersion, Exemplars.TraceId, Exemplars.SpanId, Exemplars.Value "
        "FROM otel.otel_metrics_sum WHERE ServiceName = {service:String} ORDER BY MetricName",
        service=service_name,
    )
    assert [row[:5] for row in sums] == [
        ("http.inflight", 3.0, False, 2, {}),
        ("http.requests", 5.0, True, 2, {"route": "/pay"}),
    ]
    assert sums[1][5:9] == ("requests served", "1", "payments.meter", "1.1")
    trace_id, span_id = format(context.trace_id, "032x"), format(context.span_id, "016x")
    assert trace_id in sums[1][9]
    assert span_id in sums[1][10]

    gauges = query(
        server,
        "SELECT MetricName, Value, Attributes, MetricUnit, TimeUnix > toDateTime('2020-01-01') "
        "FROM otel.otel_metrics_gauge WHERE ServiceName = {service:String}",
        service=service_name,
    )
    assert gauges == [("cpu.temperature", 71.5, {"core": "0"}, "Cel", True)]

    histograms = query(
        server,
        "SELECT MetricName, Count, Sum, Min, Max, length(BucketCounts) = length(ExplicitBounds) + 1, "
        "arraySum(BucketCounts), AggregationTemporality, Exemplars.TraceId "
        "FROM otel.otel_metrics_histogram WHERE ServiceName = {service:String}",
        service=service_name,
    )
    assert len(histograms) == 1
    assert histograms[0][:8] == ("http.duration", 2, 262.5, 12.5, 250.0, True, 2, 2)
    assert trace_id in histograms[0][8]

    exponential = query(
        server,
        "SELECT MetricName, Count, Sum, Min, Max, ZeroCount, Scale, "
        "arraySum(PositiveBucketCounts) + arraySum(NegativeBucketCounts) + ZeroCount "
        "FROM otel.otel_metrics_exponential_histogram WHERE ServiceName = {service:String}",
        service=service_name,
    )
    assert len(exponential) == 1
    assert exponential[0][:6] == ("payload.size", 4, 1031.0, 1.0, 1024.0, 0)
    assert exponential[0][7] == 4


def test_summary_points_from_protobuf(server: Server, service_name: str) -> None:
    import httpx

    from tests.factories import summary_request

    body = summary_request(service_name, "rpc.latency").SerializeToString()
    response = httpx.post(
        server.url() + "/v1/metrics", content=body, headers={"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 200
    rows = query(
        server,
        "SELECT MetricName, MetricUnit, Count, Sum, ValueAtQuantiles.Quantile, ValueAtQuantiles.Value, Attributes, "
        "toUnixTimestamp(TimeUnix), toUnixTimestamp(StartTimeUnix) "
        "FROM otel.otel_metrics_summary WHERE ServiceName = {service:String}",
        service=service_name,
    )
    assert rows == [
        ("rpc.latency", "ms", 10, 123.5, [0.5, 0.99], [10.0, 42.25], {"route": "/pay"}, T0 // 10**9, T0 // 10**9 - 60)
    ]
    assert json.loads(response.content or b"{}") == {} or response.headers["content-type"] == "application/x-protobuf"
