"""Realistic OTLP payloads for benchmarks: ~10 span attributes, 9 resource attributes, as a service would send.

Every body also carries `service.instance.id` with a fixed-width placeholder that `stamped` replaces by a request
number: the correlator answers a body identical to one it stored recently from that write (an exporter's resend),
so a benchmark that posted the same bytes twice would measure that instead of a write.
"""

from __future__ import annotations

import random

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

SERVICES = ["checkout", "payments", "cart", "catalog", "shipping"]
ROUTES = ["/api/cart", "/api/pay", "/api/items/{id}", "/api/ship", "/healthz"]
START_NS = 1_767_225_600_000_000_000
INSTANCE_PLACEHOLDER = "instance-000000000000"


def stamped(body: bytes, number: int) -> bytes:
    """The body with its `service.instance.id` placeholder replaced by `number` (same width: still valid)."""
    return body.replace(INSTANCE_PLACEHOLDER.encode(), f"instance-{number:012d}".encode(), 1)


def _kv(key: str, value: object) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.string_value = str(value)
    return kv


def _resource(service: str, pod: int) -> list[KeyValue]:
    return [
        _kv("service.name", service), _kv("service.version", "1.4.2"), _kv("service.namespace", "shop"),
        _kv("deployment.environment.name", "production"), _kv("deployment.id", "deploy-7f3a"),
        _kv("k8s.namespace.name", "shop"), _kv("k8s.pod.name", f"{service}-7d9c-{pod}"),
        _kv("host.name", f"node-{pod % 3}"), _kv("service.instance.id", INSTANCE_PLACEHOLDER),
    ]  # fmt: skip


def traces_body(spans: int, seed: int) -> bytes:
    """One ExportTraceServiceRequest of `spans` spans, serialized."""
    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    service = SERVICES[seed % len(SERVICES)]
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(_resource(service, seed % 7))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.fastapi"
    scope.scope.version = "0.48b0"
    for i in range(spans):
        span = scope.spans.add()
        span.trace_id = rng.randbytes(16)
        span.span_id = rng.randbytes(8)
        if i % 4:
            span.parent_span_id = rng.randbytes(8)
        route = ROUTES[i % len(ROUTES)]
        span.name = f"GET {route}"
        span.kind = 2 if i % 4 == 0 else 3
        span.start_time_unix_nano = START_NS + seed * 1_000_000_000 + i * 1000
        span.end_time_unix_nano = span.start_time_unix_nano + rng.randint(100_000, 90_000_000)
        status = 500 if rng.random() < 0.02 else 200
        span.attributes.extend([
            _kv("http.request.method", "GET"), _kv("http.route", route), _kv("http.response.status_code", status),
            _kv("url.path", route.replace("{id}", str(rng.randint(1, 9999)))), _kv("url.scheme", "http"),
            _kv("server.address", f"{service}.shop.svc"), _kv("server.port", 8080),
            _kv("network.protocol.version", "1.1"), _kv("user_agent.original", "python-httpx/0.28"),
            _kv("client.address", f"10.0.{rng.randint(0, 9)}.{rng.randint(1, 254)}"),
        ])  # fmt: skip
        if status == 500:
            span.status.code = 2
            span.status.message = "upstream failed"
    return request.SerializeToString()


def logs_body(records: int, seed: int) -> bytes:
    """One ExportLogsServiceRequest of `records` records with trace context, serialized."""
    rng = random.Random(seed)
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(_resource(SERVICES[seed % len(SERVICES)], seed % 7))
    scope = resource_logs.scope_logs.add()
    scope.scope.name = "app.logger"
    for i in range(records):
        record = scope.log_records.add()
        record.time_unix_nano = START_NS + seed * 1_000_000_000 + i * 1000
        record.severity_number = 17 if i % 20 == 0 else 9
        record.severity_text = "ERROR" if i % 20 == 0 else "INFO"
        record.body.string_value = f"handled request {i} for order {rng.randint(1, 10**6)} in {rng.randint(1, 900)} ms"
        record.trace_id = rng.randbytes(16)
        record.span_id = rng.randbytes(8)
        record.attributes.extend([_kv("code.function.name", "handle"), _kv("thread.id", i % 16),
                                  _kv("http.route", ROUTES[i % len(ROUTES)])])  # fmt: skip
    return request.SerializeToString()


def metrics_body(points: int, seed: int) -> bytes:
    """One ExportMetricsServiceRequest: half sum points, half histogram points, serialized."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(_resource(SERVICES[seed % len(SERVICES)], seed % 7))
    scope = resource_metrics.scope_metrics.add()
    counter = scope.metrics.add(name="http.server.requests", unit="1")
    counter.sum.aggregation_temporality = 2
    counter.sum.is_monotonic = True
    histogram = scope.metrics.add(name="http.server.request.duration", unit="s")
    histogram.histogram.aggregation_temporality = 2
    for i in range(points // 2):
        time_ns = START_NS + seed * 1_000_000_000 + i * 1_000_000
        attributes = [_kv("http.route", ROUTES[i % len(ROUTES)]), _kv("http.response.status_code", 200),
                      _kv("pod", i % 50)]  # fmt: skip
        point = counter.sum.data_points.add(start_time_unix_nano=START_NS, time_unix_nano=time_ns, as_int=i)
        point.attributes.extend(attributes)
        hist = histogram.histogram.data_points.add(
            start_time_unix_nano=START_NS, time_unix_nano=time_ns, count=10, sum=1.5, min=0.01, max=0.9
        )
        hist.attributes.extend(attributes)
        hist.explicit_bounds.extend([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0])
        hist.bucket_counts.extend([0, 1, 2, 3, 2, 1, 0, 1, 0])
    return request.SerializeToString()
