"""OTLP JSON decodes to exactly the message the protobuf encoding carries, with the spec's hex ids."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.message import Message
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from correlator.errors import UndecodableBody
from correlator.otlp.decode import Encoding, Signal, decode_request
from tests.factories import T0, any_value, logs_request, otlp_json, span, summary_request, traces_request


def _otlp_json(message: Message, *, camel: bool, enums_as_names: bool) -> bytes:
    return json.dumps(otlp_json(message, camel=camel, enums_as_names=enums_as_names)).encode()


def _rich_traces() -> Message:
    attributes = {
        "s": "x", "b": True, "i": -(2**62), "d": 0.5, "nan": float("nan"), "inf": float("-inf"), "bytes": b"\x00\xff",
        "empty_list": [], "empty_map": {}, "nested": {"a": [1, {"b": None}]},
    }  # fmt: skip
    one = span(attributes=attributes, parent_span_id=b"\x07" * 8)
    one.events.add(time_unix_nano=T0 + 1, name="e").attributes.add(key="k").value.string_value = "v"
    link = one.links.add(trace_id=b"\x0a" * 16, span_id=b"\x0b" * 8, trace_state="t=1")
    link.attributes.add(key="l").value.int_value = 1
    one.status.code = 2
    one.status.message = "boom"
    return traces_request("svc", [one])


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        pytest.param(Signal.TRACES, _rich_traces(), id="traces"),
        pytest.param(
            Signal.LOGS,
            logs_request("svc", [LogRecord(time_unix_nano=T0, body=any_value({"k": [1, 2.5]}), trace_id=b"\x01" * 16,
                                           span_id=b"\x02" * 8, severity_number=17, flags=1, event_name="ev")]),
            id="logs",
        ),
        pytest.param(Signal.METRICS, summary_request("svc", "latency"), id="metrics-summary"),
    ],
)  # fmt: skip
@pytest.mark.parametrize("camel", [True, False], ids=["camelCase", "original-names"])
@pytest.mark.parametrize("enums_as_names", [False, True], ids=["int-enums", "named-enums"])
def test_json_decodes_to_the_same_message(signal: Signal, message: Message, camel: bool, enums_as_names: bool) -> None:
    body = _otlp_json(message, camel=camel, enums_as_names=enums_as_names)
    decoded = decode_request(signal, body, Encoding.JSON)
    # NaN never equals itself, so compare the encodings.
    assert decoded.SerializeToString(deterministic=True) == message.SerializeToString(deterministic=True)


def test_int64_as_numbers_or_strings_and_unknown_fields_are_ignored() -> None:
    body = {
        "resourceSpans": [{"scopeSpans": [{"spans": [{
            "traceId": "0102030405060708090A0B0C0D0E0F10", "spanId": "0102030405060708", "name": "n",
            "startTimeUnixNano": T0, "endTimeUnixNano": str(T0 + 5), "kind": "SPAN_KIND_CLIENT", "futureField": [1],
        }]}]}],
    }  # fmt: skip
    decoded: Any = decode_request(Signal.TRACES, json.dumps(body).encode(), Encoding.JSON)
    parsed = decoded.resource_spans[0].scope_spans[0].spans[0]
    assert parsed.trace_id == bytes(range(1, 17))
    assert (parsed.start_time_unix_nano, parsed.end_time_unix_nano, parsed.kind) == (T0, T0 + 5, 3)


def test_empty_array_value_keeps_its_type() -> None:
    body = {"resourceSpans": [{"resource": {"attributes": [{"key": "a", "value": {"arrayValue": {}}}]}}]}
    decoded: Any = decode_request(Signal.TRACES, json.dumps(body).encode(), Encoding.JSON)
    assert decoded.resource_spans[0].resource.attributes[0].value.WhichOneof("value") == "array_value"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param({"resourceSpans": {}}, "resourceSpans: expected a JSON array", id="object-for-array"),
        pytest.param({"resourceSpans": [7]}, "resourceSpans[0]: expected a JSON object", id="number-for-message"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": "soon"}]}]}]},
                     "spans[0].startTimeUnixNano: 'soon' is not a valid integer", id="bad-integer"),
        pytest.param({"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": "SPAN_KIND_WEIRD"}]}]}]},
                     "is not a valid SpanKind value", id="bad-enum"),
        pytest.param({"resourceSpans": [{"resource": {"attributes": [{"key": "k", "value": {"bytesValue": "%%"}}]}}]},
                     "expected base64", id="bad-base64"),
    ],
)  # fmt: skip
def test_wrong_shapes_name_the_path(body: dict[str, Any], expected: str) -> None:
    with pytest.raises(UndecodableBody, match="not an OTLP JSON ExportTraceServiceRequest") as raised:
        decode_request(Signal.TRACES, json.dumps(body).encode(), Encoding.JSON)
    assert expected in raised.value.message
