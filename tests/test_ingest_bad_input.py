"""Bad input gets a precise OTLP error; the good records of a mixed batch are kept; the server keeps running."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

from correlator.api.server import Server
from tests.conftest import query, start_server
from tests.factories import T0, logs_request, otlp_json, span, traces_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


def _count(server: Server, service: str, table: str = "otel_traces") -> int:
    rows = query(server, f"SELECT count() FROM otel.{table} WHERE ServiceName = {{s:String}}", s=service)
    return int(rows[0][0])


def _status(response: httpx.Response) -> status_pb2.Status:
    status = status_pb2.Status()
    if response.headers["content-type"].startswith("application/json"):
        json_format.Parse(response.text, status)
    else:
        status.ParseFromString(response.content)
    return status


def test_mixed_batch_keeps_good_spans_and_reports_partial_success(server: Server, service_name: str) -> None:
    good = [span(span_id=bytes([i] * 8), name=f"good-{i}") for i in range(1, 4)]
    bad = [span(trace_id=b"\x01" * 5, name="short-trace-id"), span(span_id=b"\x02" * 3, name="short-span-id")]
    body = traces_request(service_name, good + bad).SerializeToString()
    response = httpx.post(server.url("otlp_http") + "/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200
    parsed = ExportTraceServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_spans == 2
    assert "trace_id must be 16 bytes, got 5" in parsed.partial_success.error_message
    assert "span_id must be 8 bytes, got 3" in parsed.partial_success.error_message
    assert _count(server, service_name) == 3


def test_full_success_answers_an_empty_response(server: Server, service_name: str) -> None:
    body = traces_request(service_name, [span()]).SerializeToString()
    response = httpx.post(server.url() + "/v1/traces", content=body, headers=PROTOBUF)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert response.content == b""  # an empty ExportTraceServiceResponse encodes to nothing


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        pytest.param(b"\xff\xff\xff\xff", "application/x-protobuf", "not a protobuf", id="garbage-protobuf"),
        pytest.param(b"{not json", "application/json", "not valid JSON", id="broken-json"),
        pytest.param(b"[1, 2]", "application/json", "expected a JSON object", id="json-array"),
        pytest.param(b'{"resourceSpans": 7}', "application/json", "not an OTLP JSON", id="json-wrong-shape"),
    ],
)
def test_undecodable_bodies_get_400_with_a_status(
    server: Server, body: bytes, content_type: str, expected: str
) -> None:
    response = httpx.post(server.url() + "/v1/traces", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.headers["content-type"] == content_type
    status = _status(response)
    assert status.code == 3  # INVALID_ARGUMENT
    assert expected in status.message


def test_unsupported_content_type_gets_415(server: Server) -> None:
    response = httpx.post(server.url() + "/v1/logs", content=b"hello", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert "application/x-protobuf or application/json" in _status(response).message


def test_unsupported_content_encoding_gets_415(server: Server, service_name: str) -> None:
    body = traces_request(service_name, [span()]).SerializeToString()
    response = httpx.post(server.url() + "/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "br"})
    assert response.status_code == 415
    assert "Content-Encoding" in _status(response).message


def test_gzip_bodies_are_accepted_and_broken_gzip_is_400(server: Server, service_name: str) -> None:
    body = gzip.compress(traces_request(service_name, [span()]).SerializeToString())
    response = httpx.post(server.url() + "/v1/traces", content=body, headers={**PROTOBUF, "Content-Encoding": "gzip"})
    assert response.status_code == 200
    assert _count(server, service_name) == 1
    broken = httpx.post(
        server.url() + "/v1/traces", content=body[:-10], headers={**PROTOBUF, "Content-Encoding": "gzip"}
    )
    assert broken.status_code == 400
    assert "gzip" in _status(broken).message


def test_oversized_bodies_get_413_before_and_after_decompression(data_dir: object, service_name: str) -> None:
    small = start_server(data_dir, max_body_bytes=10_000)  # type: ignore[arg-type]
    try:
        spans = [span(span_id=i.to_bytes(8, "big"), attributes={"pad": "x" * 200}) for i in range(1, 200)]
        raw = traces_request(service_name, spans).SerializeToString()
        assert len(raw) > 10_000
        plain = httpx.post(small.url() + "/v1/traces", content=raw, headers=PROTOBUF)
        assert plain.status_code == 413
        zipped = gzip.compress(raw)
        assert len(zipped) < 10_000  # small on the wire, too large once inflated
        inflated = httpx.post(
            small.url() + "/v1/traces", content=zipped, headers={**PROTOBUF, "Content-Encoding": "gzip"}
        )
        assert inflated.status_code == 413
        assert "after decompression" in _status(inflated).message
        assert _count(small, service_name) == 0
        # The server keeps serving.
        ok = httpx.post(small.url() + "/v1/traces", content=traces_request(service_name, [span()]).SerializeToString(),
                        headers=PROTOBUF)  # fmt: skip
        assert ok.status_code == 200
    finally:
        small.stop()


def test_json_bodies_with_hex_ids_int_enums_and_string_int64(server: Server, service_name: str) -> None:
    request = traces_request(service_name, [span(parent_span_id=b"\x09" * 8, attributes={"n": 2**40, "flag": True})])
    document = otlp_json(request, upper_ids=True)  # any case is accepted
    text = json.dumps(document)
    assert '"kind": 2' in text  # integer enum
    assert f'"startTimeUnixNano": "{T0}"' in text  # int64 as a string
    response = httpx.post(server.url() + "/v1/traces", content=text, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json() == {}
    rows = query(
        server,
        "SELECT TraceId, SpanId, ParentSpanId, SpanKind, SpanAttributes, toUnixTimestamp64Nano(Timestamp) "
        "FROM otel.otel_traces WHERE ServiceName = {s:String}",
        s=service_name,
    )
    assert rows == [
        (bytes(range(1, 17)).hex(), bytes(range(1, 9)).hex(), "09" * 8, "Server", {"n": str(2**40), "flag": "true"}, T0)
    ]


def test_json_bad_hex_id_rejects_only_that_record(server: Server, service_name: str) -> None:
    document = otlp_json(traces_request(service_name, [span(name="ok"), span(name="bad", span_id=b"\x05" * 8)]))
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]  # type: ignore[index]
    spans[1]["spanId"] = "not-hex!"
    response = httpx.post(server.url() + "/v1/traces", json=document)
    assert response.status_code == 200
    assert response.json()["partialSuccess"]["rejectedSpans"] == "1"
    assert _count(server, service_name) == 1


def test_logs_with_bad_ids_are_rejected_and_good_ones_kept(server: Server, service_name: str) -> None:
    records = [
        LogRecord(time_unix_nano=T0, body=None, trace_id=b"\x01" * 16, span_id=b"\x02" * 8),
        LogRecord(time_unix_nano=T0, trace_id=b"\x01" * 7),
        LogRecord(time_unix_nano=T0),
    ]
    response = httpx.post(
        server.url() + "/v1/logs", content=logs_request(service_name, records).SerializeToString(), headers=PROTOBUF
    )
    assert response.status_code == 200
    assert ExportLogsServiceResponse.FromString(response.content).partial_success.rejected_log_records == 1
    assert _count(server, service_name, "otel_logs") == 2


def test_raw_attribute_types_map_like_the_collector(server: Server, service_name: str) -> None:
    attributes = {
        "bytes": b"\x00\xffhi",
        "map": {"z": 1, "a": {"nested": [1.5, "x", b"\x01"]}, "m": "<b>"},
        "empty_list": [],
        "neg_zero": -0.0,
        "large": 1e16,
        "small": 0.000015,
    }
    body = traces_request(service_name, [span(attributes=attributes)], resource={"k8s.pod.name": "p-1"})
    response = httpx.post(server.url() + "/v1/traces", content=body.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    rows = query(server, "SELECT SpanAttributes FROM otel.otel_traces WHERE ServiceName = {s:String}", s=service_name)
    assert rows == [
        (
            {
                "bytes": "AP9oaQ==",
                "map": '{"a":{"nested":[1.5,"x","AQ=="]},"m":"\\u003cb\\u003e","z":1}',
                "empty_list": "[]",
                "neg_zero": "-0",
                "large": "10000000000000000",
                "small": "0.000015",
            },
        )
    ]


def test_metrics_histogram_with_inconsistent_buckets_is_rejected(server: Server, service_name: str) -> None:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
        ExportMetricsServiceResponse,
    )

    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.add(key="service.name").value.string_value = service_name
    metric = resource_metrics.scope_metrics.add().metrics.add(name="h")
    good = metric.histogram.data_points.add(time_unix_nano=T0, count=3, sum=6.0)
    good.bucket_counts.extend([1, 2])
    good.explicit_bounds.extend([5.0])
    bad = metric.histogram.data_points.add(time_unix_nano=T0, count=3)
    bad.bucket_counts.extend([1, 1, 1])
    bad.explicit_bounds.extend([5.0])
    response = httpx.post(server.url() + "/v1/metrics", content=request.SerializeToString(), headers=PROTOBUF)
    assert response.status_code == 200
    parsed = ExportMetricsServiceResponse.FromString(response.content)
    assert parsed.partial_success.rejected_data_points == 1
    assert "3 bucket counts do not fit 1 explicit bounds" in parsed.partial_success.error_message
    assert _count(server, service_name, "otel_metrics_histogram") == 1


def test_rejections_are_counted_on_metrics(server: Server) -> None:
    httpx.post(server.url() + "/v1/traces", content=b"\xff", headers=PROTOBUF)
    text = httpx.get(server.url() + "/metrics").text
    assert 'correlator_otlp_rejected_total{reason="undecodable_body",signal="traces"}' in text


def test_grpc_partial_success_and_garbage(server: Server, service_name: str) -> None:
    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

    request = traces_request(service_name, [span(), span(span_id=b"\x01", name="bad")])
    with grpc.insecure_channel(f"127.0.0.1:{server.ports['otlp_grpc']}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        response = stub.Export(request, timeout=10)
        assert response.partial_success.rejected_spans == 1
        raw = channel.unary_unary(
            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            request_serializer=None,
            response_deserializer=None,
        )
        with pytest.raises(grpc.RpcError) as raised:
            raw(b"\xff\xff\xff", timeout=10)
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "not a protobuf ExportTraceServiceRequest" in (raised.value.details() or "")
    assert _count(server, service_name) == 1
