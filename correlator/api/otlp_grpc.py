"""OTLP/gRPC: the three Export services on one grpc.aio server, sharing the ingest use case."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2, duration_pb2
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from correlator.api.state import AppState
from correlator.errors import CorrelatorError, Overloaded, StoreError
from correlator.otlp.decode import Signal, export_response

_GRPC_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
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


async def _export(state: AppState, signal: Signal, request: Any, context: Any) -> Any:
    metadata = dict(context.invocation_metadata() or ())
    try:
        state.auth.check(metadata.get("authorization"), "write")
        result = await state.ingest.export_message(signal, request)
    except CorrelatorError as e:
        state.ingest.count_rejected_request(signal, e.error_type)
        await _abort(context, e)
        raise  # abort raises; this line is never reached
    return export_response(signal, result.rejected, result.error_message)


class _Traces(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, state: AppState) -> None:
        self._state = state

    async def Export(self, request: Any, context: Any) -> Any:
        return await _export(self._state, Signal.TRACES, request, context)


class _Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, state: AppState) -> None:
        self._state = state

    async def Export(self, request: Any, context: Any) -> Any:
        return await _export(self._state, Signal.LOGS, request, context)


class _Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, state: AppState) -> None:
        self._state = state

    async def Export(self, request: Any, context: Any) -> Any:
        return await _export(self._state, Signal.METRICS, request, context)


def build_grpc_server(state: AppState, bind: str, port: int) -> tuple[Any, int]:
    """A grpc.aio server with the three services, bound (not started); returns it and the bound port."""
    limit = state.settings.max_body_bytes
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ]
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _Traces(state), server
    )
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _Logs(state), server
    )
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(  # type: ignore[no-untyped-call]
        _Metrics(state), server
    )
    host = f"[{bind}]" if ":" in bind else bind
    bound = server.add_insecure_port(f"{host}:{port}")
    return server, bound
