"""Build telemetry scenarios with chosen timestamps through the real OpenTelemetry SDK (spans and their parents)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from correlator.api.server import Server


def ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


class ServiceSim:
    """One service at one version: serves requests and calls other services, with explicit times."""

    def __init__(self, server: Server, service: str, **resource: str) -> None:
        self.service = service
        attributes = {"service.name": service, **{k.replace("_", "."): v for k, v in resource.items()}}
        self._provider = TracerProvider(resource=Resource.create(attributes))
        exporter = OTLPSpanExporter(endpoint=server.url() + "/v1/traces")
        self._provider.add_span_processor(BatchSpanProcessor(exporter, max_queue_size=100_000))
        self._tracer = self._provider.get_tracer("scenario")

    def request(
        self,
        at: datetime,
        duration_ms: float,
        *,
        name: str = "GET /items",
        error: tuple[str, str] | None = None,
        http_status: int | None = None,
        parent: trace.Context | None = None,
        inside: Callable[[trace.Context], object] | None = None,
    ) -> trace.Span:
        """A server span; `error` = (exception type, message) makes it fail with an exception event; `inside`
        makes the span's own calls, given its context."""
        attributes = {"http.response.status_code": http_status} if http_status else {}
        span = self._tracer.start_span(
            name, kind=SpanKind.SERVER, start_time=ns(at), context=parent, attributes=attributes
        )
        if inside is not None:
            inside(trace.set_span_in_context(span))
        if error is not None:
            span.add_event("exception", {"exception.type": error[0], "exception.message": error[1]}, timestamp=ns(at))
            span.set_status(Status(StatusCode.ERROR, error[1]))
        span.end(end_time=ns(at) + int(duration_ms * 1_000_000))
        return span

    def call(
        self,
        at: datetime,
        callee: ServiceSim,
        duration_ms: float,
        *,
        name: str = "GET /items",
        error: tuple[str, str] | None = None,
        parent: trace.Context | None = None,
        inside: Callable[[trace.Context], object] | None = None,
    ) -> trace.Span:
        """A client span of this service with the callee's server span under it; both fail with `error`;
        `inside` makes the callee's own calls."""
        client = self._tracer.start_span(name, kind=SpanKind.CLIENT, start_time=ns(at), context=parent)
        server_context = trace.set_span_in_context(client)
        callee.request(at, duration_ms * 0.9, name=name, error=error, parent=server_context, inside=inside)
        if error is not None:
            client.set_status(Status(StatusCode.ERROR, error[1]))
        client.end(end_time=ns(at) + int(duration_ms * 1_000_000))
        return client

    def close(self) -> None:
        """Send everything buffered and stop."""
        self._provider.shutdown()
