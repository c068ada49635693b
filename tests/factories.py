"""Builders of OTLP requests with explicit ids and times, so stored rows can be asserted exactly."""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.trace.v1.trace_pb2 import Span

T0 = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z in ns


def any_value(value: Any) -> AnyValue:
    """An AnyValue from a Python value (None, bytes, bool, int, float, str, list, dict)."""
    if value is None:
        return AnyValue()
    if isinstance(value, bytes):
        return AnyValue(bytes_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, list):
        result = AnyValue()
        result.array_value.values.extend(any_value(item) for item in value)
        return result
    result = AnyValue()
    result.kvlist_value.values.extend(key_values(value))
    return result


def key_values(attributes: dict[str, Any]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attributes.items()]


def span(
    name: str = "GET /",
    trace_id: bytes = bytes(range(1, 17)),
    span_id: bytes = bytes(range(1, 9)),
    parent_span_id: bytes = b"",
    start: int = T0,
    duration_ns: int = 1_000_000,
    kind: int = Span.SPAN_KIND_SERVER,
    attributes: dict[str, Any] | None = None,
) -> Span:
    return Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent_span_id,
        name=name,
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=start,
        end_time_unix_nano=start + duration_ns,
        attributes=key_values(attributes or {}),
    )


def traces_request(
    service: str, spans: list[Span], resource: dict[str, Any] | None = None
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.extend(key_values({"service.name": service, **(resource or {})}))
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "factory"
    scope_spans.scope.version = "1.0"
    scope_spans.spans.extend(spans)
    return request


def logs_request(service: str, records: list[LogRecord]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.extend(key_values({"service.name": service}))
    resource_logs.scope_logs.add().log_records.extend(records)
    return request


def summary_request(service: str, name: str, time_ns: int = T0) -> ExportMetricsServiceRequest:
    """A summary metric: the Python SDK cannot produce one, so this builds it as a Prometheus bridge would."""
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(key_values({"service.name": service}))
    metric = resource_metrics.scope_metrics.add().metrics.add()
    metric.name = name
    metric.unit = "ms"
    point = metric.summary.data_points.add()
    point.start_time_unix_nano = time_ns - 60_000_000_000
    point.time_unix_nano = time_ns
    point.count = 10
    point.sum = 123.5
    point.attributes.extend(key_values({"route": "/pay"}))
    for quantile, value in ((0.5, 10.0), (0.99, 42.25)):
        item = point.quantile_values.add()
        item.quantile = quantile
        item.value = value
    return request


_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def otlp_json(
    message: Message, *, camel: bool = True, enums_as_names: bool = False, upper_ids: bool = False
) -> dict[str, Any]:
    """A message as an OTLP JSON document: protobuf's JSON mapping, but ids as hex (the OTLP spec's rule)."""
    document = json_format.MessageToDict(
        message, use_integers_for_enums=not enums_as_names, preserving_proto_field_name=not camel
    )

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_KEYS and isinstance(value, str):
                    text = base64.b64decode(value).hex()
                    node[key] = text.upper() if upper_ids else text
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(document)
    return document
