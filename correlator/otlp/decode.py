"""OTLP request bodies (protobuf or JSON, plain or gzip) to messages, and responses encoded like the request."""

from __future__ import annotations

import enum
import json
import zlib
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from correlator.errors import PayloadTooLarge, UndecodableBody, UnsupportedMediaType
from correlator.otlp.json_decode import fill


class Signal(enum.StrEnum):
    """The three OTLP signals."""

    TRACES = "traces"
    LOGS = "logs"
    METRICS = "metrics"


class Encoding(enum.StrEnum):
    """The two OTLP/HTTP body encodings."""

    PROTOBUF = "application/x-protobuf"
    JSON = "application/json"


REQUEST_TYPES: dict[Signal, type[Message]] = {
    Signal.TRACES: trace_service_pb2.ExportTraceServiceRequest,
    Signal.LOGS: logs_service_pb2.ExportLogsServiceRequest,
    Signal.METRICS: metrics_service_pb2.ExportMetricsServiceRequest,
}
RESPONSE_TYPES: dict[Signal, type[Message]] = {
    Signal.TRACES: trace_service_pb2.ExportTraceServiceResponse,
    Signal.LOGS: logs_service_pb2.ExportLogsServiceResponse,
    Signal.METRICS: metrics_service_pb2.ExportMetricsServiceResponse,
}
# The partial_success counter of each response type.
REJECTED_FIELD = {
    Signal.TRACES: "rejected_spans",
    Signal.LOGS: "rejected_log_records",
    Signal.METRICS: "rejected_data_points",
}


def parse_content_type(header: str | None) -> Encoding:
    """The body encoding named by a Content-Type header; 415 for anything else."""
    media_type = (header or "").split(";", 1)[0].strip().lower()
    for encoding in Encoding:
        if media_type == encoding.value:
            return encoding
    raise UnsupportedMediaType(
        f"expected Content-Type application/x-protobuf or application/json, got {header or 'none'!r}"
    )


def decompress(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """The body after Content-Encoding (identity or gzip), refused past `limit` bytes."""
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("", "identity"):
        if len(body) > limit:
            raise PayloadTooLarge(f"the body is {len(body)} bytes; the limit is {limit} bytes")
        return body
    if encoding not in ("gzip", "deflate"):
        raise UnsupportedMediaType(f"expected Content-Encoding gzip or identity, got {content_encoding!r}")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as e:
        raise UndecodableBody(f"the body is not valid {encoding}: {e}") from e
    if len(data) > limit:
        raise PayloadTooLarge(f"the body is more than {limit} bytes after decompression; the limit is {limit} bytes")
    if not inflater.eof:
        raise UndecodableBody(f"the {encoding} body is truncated")
    return data


def decode_request(signal: Signal, body: bytes, encoding: Encoding) -> Message:
    """Parse one export request; 400 when the body is not a valid message of that signal."""
    message = REQUEST_TYPES[signal]()
    if encoding is Encoding.PROTOBUF:
        try:
            message.ParseFromString(body)
        except (DecodeError, RecursionError) as e:
            raise UndecodableBody(f"the body is not a protobuf {message.DESCRIPTOR.name}: {e}") from e
        return message
    try:
        document = json.loads(body)
    # ValueError: also an integer of more digits than Python converts (4300), which is not a JSONDecodeError.
    except (ValueError, RecursionError) as e:
        raise UndecodableBody(f"the body is not valid JSON: {e}") from e
    if not isinstance(document, dict):
        raise UndecodableBody(f"expected a JSON object {message.DESCRIPTOR.name}, got {type(document).__name__}")
    try:
        fill(message, document, message.DESCRIPTOR.name)
    except UndecodableBody as e:
        raise UndecodableBody(f"the body is not an OTLP JSON {message.DESCRIPTOR.name}: {e.message}") from e
    # OverflowError: an integer too large for a double field (float(10**400)).
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        raise UndecodableBody(f"the body is not an OTLP JSON {message.DESCRIPTOR.name}: {e}") from e
    return message


def encode_message(message: Message, encoding: Encoding) -> bytes:
    """A response message in the request's encoding."""
    if encoding is Encoding.PROTOBUF:
        return bytes(message.SerializeToString())
    return json_format.MessageToJson(message, indent=None).encode("utf-8")


def export_response(signal: Signal, rejected: int, error_message: str) -> Any:
    """The Export response: empty on full success, partial_success with a count and message otherwise."""
    response: Any = RESPONSE_TYPES[signal]()
    if rejected or error_message:
        setattr(response.partial_success, REJECTED_FIELD[signal], rejected)
        response.partial_success.error_message = error_message
    return response


def success_response(signal: Signal, rejected: int, error_message: str, encoding: Encoding) -> bytes:
    """The encoded Export response of an accepted request."""
    return encode_message(export_response(signal, rejected, error_message), encoding)


def status_body(code: int, message: str, encoding: Encoding) -> bytes:
    """A google.rpc.Status, the body of every OTLP/HTTP error."""
    return encode_message(status_pb2.Status(code=code, message=message), encoding)
