"""Where the three signals go: OTLP exporters over HTTP/protobuf, or gRPC when that exporter is installed."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

PROTOCOLS = ("http/protobuf", "grpc")
DEFAULT_PROTOCOL = "http/protobuf"


@dataclass(frozen=True)
class ExportSettings:
    """How to reach the collector; a None field is left to the exporters' own OTEL_EXPORTER_OTLP_* variables."""

    protocol: str = DEFAULT_PROTOCOL
    endpoint: str | None = None
    headers: Mapping[str, str] | None = None
    timeout_s: float | None = None


@dataclass(frozen=True)
class Exporters:
    """One exporter per signal."""

    spans: SpanExporter
    metrics: MetricExporter
    logs: LogRecordExporter


def resolve_protocol(argument: str | None, environ: Mapping[str, str]) -> str:
    """The OTLP protocol: argument > OTEL_EXPORTER_OTLP_PROTOCOL > http/protobuf."""
    source, protocol = "protocol", argument
    if not protocol:
        source, protocol = "OTEL_EXPORTER_OTLP_PROTOCOL", environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if not protocol:
        return DEFAULT_PROTOCOL
    if protocol not in PROTOCOLS:
        # http/json is a valid OTLP protocol, but the Python SDK ships no exporter for it.
        raise ValueError(f"{source}: expected one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def build_exporters(settings: ExportSettings) -> Exporters:
    """Exporters for the chosen protocol."""
    if settings.protocol == "grpc":
        return _grpc_exporters(settings)
    return _http_exporters(settings)


def _http_exporters(settings: ExportSettings) -> Exporters:
    def url(path: str) -> str | None:
        # A given base URL gets the signal's path, as OTEL_EXPORTER_OTLP_ENDPOINT would; the exporters take full URLs.
        return None if settings.endpoint is None else f"{settings.endpoint.rstrip('/')}/{path}"

    return Exporters(
        spans=HttpSpanExporter(endpoint=url("v1/traces"), headers=settings.headers, timeout=settings.timeout_s),
        metrics=HttpMetricExporter(endpoint=url("v1/metrics"), headers=settings.headers, timeout=settings.timeout_s),
        logs=HttpLogExporter(endpoint=url("v1/logs"), headers=settings.headers, timeout=settings.timeout_s),
    )


def _grpc_exporters(settings: ExportSettings) -> Exporters:
    try:  # optional: the gRPC exporter pulls in grpcio, which not every service wants
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as e:
        raise ValueError(
            "protocol 'grpc' needs opentelemetry-exporter-otlp-proto-grpc installed; use 'http/protobuf' or install it"
        ) from e

    headers = None if settings.headers is None else dict(settings.headers)
    # The gRPC exporters read the scheme of the endpoint: http:// means a plaintext channel.
    return Exporters(
        spans=OTLPSpanExporter(endpoint=settings.endpoint, headers=headers, timeout=settings.timeout_s),
        metrics=OTLPMetricExporter(endpoint=settings.endpoint, headers=headers, timeout=settings.timeout_s),
        logs=OTLPLogExporter(endpoint=settings.endpoint, headers=headers, timeout=settings.timeout_s),
    )
