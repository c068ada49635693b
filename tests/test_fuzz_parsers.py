"""Fuzzed parsers: every outside input gets a clean result or a 4xx CorrelatorError, never another exception.

This first part holds the crashes the fuzzing found, as fixed examples; the fuzzing itself follows.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from correlator.api.server import Server
from correlator.errors import BadRequest, CorrelatorError, UndecodableBody
from correlator.events.github import parse_github
from correlator.events.times import parse_duration, parse_instant, parse_time_or_ago, parse_window
from correlator.events.webhooks import WEBHOOKS
from correlator.otlp.decode import Encoding, Signal, decode_request
from tests.conftest import query
from tests.factories import T0, any_value, key_values, logs_request, span, traces_request

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


# --- Crashes the fuzzing found, each fixed in its own commit ---------------------------------------------------


@pytest.mark.parametrize(
    "text", ["9" * 30 + "d", "99999999999999w", "999999d", "3000000w"], ids=["digits", "weeks", "days", "years"]
)
def test_a_duration_past_what_a_time_holds_is_a_400(text: str) -> None:
    with pytest.raises(BadRequest, match=r"duration|before the year 1"):
        parse_time_or_ago(text, field="since", now=NOW)
    with pytest.raises(BadRequest):
        parse_window(text, None, default=timedelta(hours=1), longest=timedelta(days=90), now=NOW)


def test_an_instant_past_the_year_9999_in_utc_is_a_400() -> None:
    with pytest.raises(BadRequest, match="past the year 9999"):
        parse_instant("9999-12-31T23:59:59-01:00", field="until", now=NOW)


def test_an_overlong_duration_is_a_400() -> None:
    with pytest.raises(BadRequest, match="at most 999999999 days"):
        parse_duration("9" * 30 + "s")


def _refused(signal: Signal, body: bytes, encoding: Encoding = Encoding.JSON) -> CorrelatorError:
    with pytest.raises(CorrelatorError) as caught:
        decode_request(signal, body, encoding)
    assert caught.value.status_code == 400
    return caught.value


def test_a_json_integer_of_more_digits_than_python_converts_is_a_400() -> None:
    body = b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"startTimeUnixNano": ' + b"1" * 5000 + b"}]}]}]}"
    assert "not valid JSON" in _refused(Signal.TRACES, body).message


def test_a_json_integer_too_large_for_a_double_field_is_a_400() -> None:
    value = b'{"doubleValue": 1' + b"0" * 400 + b"}"
    body = b'{"resourceSpans": [{"resource": {"attributes": [{"key": "a", "value": ' + value + b"}]}}]}"
    assert "not an OTLP JSON" in _refused(Signal.TRACES, body).message


def _nested_arrays(arrays: int) -> bytes:
    """A trace request whose resource attribute nests `arrays` arrays: its messages are 4 + 2 * arrays deep."""
    value: dict[str, Any] = {"stringValue": "x"}
    for _ in range(arrays):
        value = {"arrayValue": {"values": [value]}}
    span = {"traceId": "01" * 16, "spanId": "01" * 8, "name": "s", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    resource = {"attributes": [{"key": "deep", "value": value}]}
    return json.dumps({"resourceSpans": [{"resource": resource, "scopeSpans": [{"spans": [span]}]}]}).encode()


def test_json_nested_deeper_than_protobuf_decodes_is_a_400_like_the_protobuf() -> None:
    # The engine path queues the protobuf serialization of a JSON body and re-parses it when it falls back to
    # the Python mapping; a body nested past protobuf's limit failed there: a 503 for every request of the batch.
    deepest = decode_request(Signal.TRACES, _nested_arrays(48), Encoding.JSON)  # messages 100 deep
    assert decode_request(Signal.TRACES, deepest.SerializeToString(), Encoding.PROTOBUF) == deepest
    assert "nested more than 100 deep" in _refused(Signal.TRACES, _nested_arrays(49)).message
    too_deep = copy.deepcopy(deepest)
    innermost = too_deep.resource_spans[0].resource.attributes[0].value
    while innermost.HasField("array_value"):
        innermost = innermost.array_value.values[0]
    innermost.array_value.values.add().string_value = "x"
    _refused(Signal.TRACES, too_deep.SerializeToString(), Encoding.PROTOBUF)


def _post_protobuf(server: Server, signal: str, message: Message) -> httpx.Response:
    headers = {"Content-Type": "application/x-protobuf"}
    return httpx.post(f"{server.url()}/v1/{signal}", content=message.SerializeToString(), headers=headers, timeout=60)


def test_nanosecond_times_past_2_63_are_stored_wrapped_on_both_ingest_paths(
    any_path_server: Server, service_name: str
) -> None:
    # The exporter writes int64(ns) (and so does the engine path); the Python mapping sent the unsigned value,
    # which does not fit a DateTime64(9): the insert failed and the whole batch got a 503.
    late = span(start=2**64 - 2, duration_ns=1)
    late.events.add(time_unix_nano=2**63, name="wrapped")
    assert _post_protobuf(any_path_server, "traces", traces_request(service_name, [late])).status_code == 200
    record = LogRecord(time_unix_nano=2**64 - 1, body=any_value("late"))
    assert _post_protobuf(any_path_server, "logs", logs_request(service_name, [record])).status_code == 200
    spans = query(
        any_path_server,
        "SELECT toUnixTimestamp64Nano(Timestamp), arrayMap(t -> toUnixTimestamp64Nano(t), Events.Timestamp), Duration"
        " FROM otel.otel_traces WHERE ServiceName = {s:String}",
        s=service_name,
    )
    assert spans == [(-2, [-(2**63)], 1)]
    logs = query(
        any_path_server,
        "SELECT toUnixTimestamp64Nano(Timestamp) FROM otel.otel_logs WHERE ServiceName = {s:String}",
        s=service_name,
    )
    assert logs == [(-1,)]


def _metrics_request(service: str, time_ns: int, exemplar_ns: int) -> ExportMetricsServiceRequest:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(key_values({"service.name": service}))
    metrics = resource_metrics.scope_metrics.add().metrics
    gauge = metrics.add(name="late.gauge").gauge.data_points.add(time_unix_nano=time_ns, as_int=1)
    gauge.exemplars.add(time_unix_nano=exemplar_ns, as_double=1.0)
    metrics.add(name="late.summary").summary.data_points.add(time_unix_nano=time_ns, count=1)
    return request


def test_metric_points_past_2106_are_rejected_not_a_failed_batch(any_path_server: Server, service_name: str) -> None:
    # TimeUnix is a DateTime (UInt32 seconds): such a point failed the insert and the whole batch got a 503. The
    # engine path leaves these points to the Python mapping, which now rejects them (partial success).
    in_range = _metrics_request(service_name, T0, T0)
    late = _metrics_request(service_name, 2**32 * 10**9, T0)
    late_exemplar = _metrics_request(service_name, T0, 2**64 - 1)
    late_exemplar.resource_metrics[0].scope_metrics[0].metrics.pop()  # the summary has no exemplars
    for request, rejected in ((in_range, 0), (late, 2), (late_exemplar, 1)):
        response = _post_protobuf(any_path_server, "metrics", request)
        assert response.status_code == 200
        answer = ExportMetricsServiceResponse.FromString(response.content)
        assert answer.partial_success.rejected_data_points == rejected
        if rejected:
            assert "past 2106-02-07" in answer.partial_success.error_message
    for table in ("otel_metrics_gauge", "otel_metrics_summary"):
        rows = query(
            any_path_server, f"SELECT count() FROM otel.{table} WHERE ServiceName = {{s:String}}", s=service_name
        )
        assert rows == [(1,)]


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
WEBHOOK_SAMPLES = Path(__file__).parent / "fixtures" / "webhooks"


@pytest.mark.parametrize("source", sorted(WEBHOOKS))
def test_a_webhook_body_nested_past_the_recursion_limit_is_a_400(source: str) -> None:
    with pytest.raises(UndecodableBody, match="not valid JSON"):
        WEBHOOKS[source](DEEP_JSON, {"x-github-event": "deployment"}, now=NOW)


def test_a_github_payload_string_nested_past_the_recursion_limit_is_ignored_like_any_bad_payload() -> None:
    document = json.loads((WEBHOOK_SAMPLES / "github_deployment.json").read_text())
    document["deployment"]["payload"] = DEEP_JSON.decode()
    delivery = parse_github(json.dumps(document).encode(), {"x-github-event": "deployment"}, now=NOW)
    assert delivery.deploys[0].service == document["repository"]["name"]


def test_a_webhook_string_with_a_lone_surrogate_is_a_400_and_a_pair_is_kept() -> None:
    # Python decodes "\ud800" into a str that no UTF-8 encoder takes: the store's insert (and Alertmanager's
    # fingerprint of the labels) raised UnicodeEncodeError, a 500.
    sample = (WEBHOOK_SAMPLES / "argocd_deployed.json").read_text()
    lone = sample.replace('"service": "checkout"', '"service": "check\\ud800out"').encode()
    with pytest.raises(UndecodableBody, match="lone surrogate"):
        WEBHOOKS["argocd"](lone, {}, now=NOW)
    paired = sample.replace('"service": "checkout"', '"service": "check\\ud83d\\ude00out"').encode()
    assert WEBHOOKS["argocd"](paired, {}, now=NOW).deploys[0].service == "check\U0001f600out"
    alert = json.loads((WEBHOOK_SAMPLES / "alertmanager_v4.json").read_text())
    del alert["alerts"][0]["fingerprint"]
    alert["alerts"][0]["labels"]["pod"] = "\ud800"
    with pytest.raises(UndecodableBody, match="lone surrogate"):
        WEBHOOKS["alertmanager"](json.dumps(alert).encode(), {}, now=NOW)


def test_a_github_payload_string_with_a_lone_surrogate_is_ignored_like_any_bad_payload() -> None:
    document = json.loads((WEBHOOK_SAMPLES / "github_deployment.json").read_text())
    document["deployment"]["payload"] = json.dumps({"service": "pay\ud800ments"})
    delivery = parse_github(json.dumps(document).encode(), {"x-github-event": "deployment"}, now=NOW)
    assert delivery.deploys[0].service == document["repository"]["name"]


@pytest.mark.parametrize(
    "kind", ["\ud800", "Server\udc80", "\u00b2"], ids=["surrogate", "trailing-surrogate", "superscript"]
)
def test_a_json_enum_that_is_no_ascii_name_is_a_400(kind: str) -> None:
    # The long run found this: upb raised SystemError looking up a lone surrogate among the enum's names.
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"kind": kind}]}]}]}).encode()
    assert "not an OTLP JSON" in _refused(Signal.TRACES, body).message
