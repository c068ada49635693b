"""OTLP/gRPC: the three Export services on one grpc.aio server, sharing the ingest use case with OTLP/HTTP.

The services are registered as generic handlers that receive the raw request bytes, so gRPC bodies take exactly
the same decode-and-store path as OTLP/HTTP protobuf bodies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2

from correlator.api.state import AppState
from correlator.errors import CorrelatorError, Overloaded, StoreError
from correlator.otlp.decode import Encoding, Signal, export_response

_SERVICES = {
    Signal.TRACES: "opentelemetry.proto.collector.trace.v1.TraceService",
    Signal.LOGS: "opentelemetry.proto.collector.logs.v1.LogsService",
    Signal.METRICS: "opentelemetry.proto.collector.metrics.v1.MetricsService",
}
_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    503: grpc.StatusCode.UNAVAILABLE,
}


async def _abort(context: Any, error: CorrelatorError) -> None:
    code = _GRPC_CODES.get(error.status_code, grpc.StatusCode.INTERNAL)
    status = status_pb2.Status(code=code.value[0], message=error.message)
    if isinstance(error, Overloaded | StoreError):
        # OTLP: UNAVAILABLE with RetryInfo tells the exporter when to retry.
        detail = any_pb2.Any()
        retry_after = getattr(error, "retry_after_s", 1)
        detail.Pack(error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=retry_after)))
        status.details.append(detail)
    await context.abort(
        code, error.message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),)
    )


def _exporter(state: AppState, signal: Signal) -> Callable[[bytes, Any], Awaitable[Any]]:
    async def export(body: bytes, context: Any) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        try:
            state.auth.check(metadata.get("authorization"), "write")
            result = await state.ingest.export_body(signal, body, Encoding.PROTOBUF, None)
        except CorrelatorError as e:
            state.ingest.count_rejected_request(signal, e.error_type)
            await _abort(context, e)
            raise  # abort raises; this line is never reached
        return export_response(signal, result.rejected, result.error_message)

    return export


def build_grpc_server(state: AppState, bind: str, port: int) -> tuple[Any, int]:
    """A grpc.aio server with the three services, bound (not started); returns it and the bound port."""
    limit = state.settings.max_body_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ]
    )
    for signal, service in _SERVICES.items():
        handler = grpc.unary_unary_rpc_method_handler(
            _exporter(state, signal),
            request_deserializer=None,  # raw bytes: decoded by the same code as OTLP/HTTP bodies
            response_serializer=lambda message: message.SerializeToString(),
        )
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": handler}),))
    host = f"[{bind}]" if ":" in bind else bind
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound
