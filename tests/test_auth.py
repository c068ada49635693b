"""Bearer tokens on every OTLP and /api request: 401 without, 403 with a read token on writes; probes stay open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from correlator.api.server import Server
from tests.conftest import query, start_server
from tests.factories import span, traces_request

PROTOBUF = {"Content-Type": "application/x-protobuf"}


@pytest.fixture(scope="module")
def secured(data_dir: Path) -> Iterator[Server]:
    running = start_server(data_dir, api_tokens="reader-token:read,writer-token:write")
    yield running
    running.stop()


def _bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        pytest.param(None, 401, id="missing"),
        pytest.param("wrong-token", 401, id="unknown"),
        pytest.param("reader-token", 403, id="read-on-write"),
        pytest.param("writer-token", 200, id="write"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/traces", "/v1/logs", "/v1/metrics"])
def test_otlp_http_needs_a_write_token(
    secured: Server, service_name: str, path: str, token: str | None, expected: int
) -> None:
    body = traces_request(service_name, [span()]).SerializeToString() if path == "/v1/traces" else b""
    response = httpx.post(secured.url("otlp_http") + path, content=body, headers={**PROTOBUF, **_bearer(token)})
    assert response.status_code == expected
    stored = query(secured, "SELECT count() FROM otel.otel_traces WHERE ServiceName = {s:String}", s=service_name)
    assert stored[0][0] == (1 if expected == 200 and path == "/v1/traces" else 0)


@pytest.mark.parametrize(
    ("token", "code"),
    [
        pytest.param(None, grpc.StatusCode.UNAUTHENTICATED, id="missing"),
        pytest.param("reader-token", grpc.StatusCode.PERMISSION_DENIED, id="read-on-write"),
        pytest.param("writer-token", grpc.StatusCode.OK, id="write"),
    ],
)
def test_otlp_grpc_needs_a_write_token(
    secured: Server, service_name: str, token: str | None, code: grpc.StatusCode
) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{secured.ports['otlp_grpc']}") as channel:
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)
        metadata = (("authorization", f"Bearer {token}"),) if token else ()
        request = traces_request(service_name, [span()])
        if code is grpc.StatusCode.OK:
            stub.Export(request, metadata=metadata, timeout=10)
        else:
            with pytest.raises(grpc.RpcError) as raised:
                stub.Export(request, metadata=metadata, timeout=10)
            assert raised.value.code() is code
    stored = query(secured, "SELECT count() FROM otel.otel_traces WHERE ServiceName = {s:String}", s=service_name)
    assert stored[0][0] == (1 if code is grpc.StatusCode.OK else 0)


@pytest.mark.parametrize(
    ("token", "expected"),
    [pytest.param(None, 401, id="missing"), pytest.param("reader-token", 200, id="read"),
     pytest.param("writer-token", 200, id="write-implies-read")],
)  # fmt: skip
def test_api_reads_need_a_read_token(secured: Server, token: str | None, expected: int) -> None:
    response = httpx.get(secured.url() + "/api/v1/store", headers=_bearer(token))
    assert response.status_code == expected
    if expected == 401:
        assert response.json()["error"]["type"] == "unauthorized"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_and_metrics_stay_open(secured: Server, path: str) -> None:
    assert httpx.get(secured.url() + path).status_code == 200
