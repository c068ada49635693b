"""The service graph: edges from spans sent through the real SDK, from Istio and Linkerd counters and histograms
sent as OTLP protobuf with explicit times (replicas, resets, delta points), merged into one edge per pair."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import polars as pl
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality, Metric
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from correlator.api.server import Server
from correlator.correlate.topology import (
    Witness,
    histogram_quantile,
    merge_witnesses,
    mesh_witnesses,
    span_witnesses,
)
from correlator.model import Edge
from tests.factories import key_values
from tests.processes import correlator_command

# A window of our own, hours back and on whole minutes, so metric points (whole seconds) land where we say.
SINCE = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
UNTIL = SINCE + timedelta(hours=1)
MS = 1_000_000
CUMULATIVE = AggregationTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url(), timeout=60) as client:
        yield client


@pytest.fixture
def prefix() -> str:
    """A prefix for this test's service names: the session store is shared."""
    return f"t{uuid.uuid4().hex[:8]}"


def graph(api: httpx.Client, since: datetime = SINCE, until: datetime = UNTIL) -> dict[str, Any]:
    response = api.get("/api/v1/topology", params={"since": iso(since), "until": iso(until)})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def edges_of(answer: dict[str, Any], prefix: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["source"], e["destination"]): e for e in answer["edges"] if e["source"].startswith(prefix)}


def nodes_of(answer: dict[str, Any], prefix: str) -> list[str]:
    return [n["service"] for n in answer["nodes"] if n["service"].startswith(prefix)]


class Services:
    """One SDK tracer provider per service, all exporting to the server; spans with explicit times and parents."""

    def __init__(self, server: Server, *names: str) -> None:
        self.providers: dict[str, TracerProvider] = {}
        for name in names:
            provider = TracerProvider(resource=Resource.create({"service.name": name}))
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=server.url() + "/v1/traces")))
            self.providers[name] = provider

    def span(
        self,
        service: str,
        kind: SpanKind,
        start: int,
        duration: int,
        parent: Span | None = None,
        error: bool = False,
        attributes: dict[str, Any] | None = None,
    ) -> Span:
        tracer = self.providers[service].get_tracer("topology-test")
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = tracer.start_span(f"{kind.name} {service}", context, kind, attributes, start_time=start)
        if error:
            span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end(end_time=start + duration)
        return span

    def flush(self) -> None:
        for provider in self.providers.values():
            provider.shutdown()


def test_edges_from_spans_across_services_and_to_an_uninstrumented_callee(
    server: Server, api: httpx.Client, prefix: str
) -> None:
    a, b, c, d = (f"{prefix}-{name}" for name in ("a", "b", "c", "d"))
    gateway, cache = f"{prefix}-payments-gateway", f"{prefix}-cache.internal"
    services = Services(server, a, b, c, d)
    for i in range(10):
        t = ns(SINCE + timedelta(minutes=i))
        root = services.span(a, SpanKind.SERVER, t, 200 * MS)
        to_b = services.span(a, SpanKind.CLIENT, t + 1 * MS, 150 * MS, root)
        served_b = services.span(b, SpanKind.SERVER, t + 2 * MS, (i + 1) * 10 * MS, to_b, error=i < 2)
        to_c = services.span(b, SpanKind.CLIENT, t + 3 * MS, 5 * MS, served_b)
        status = {"http.response.status_code": 503 if i == 9 else 200}
        services.span(c, SpanKind.SERVER, t + 4 * MS, (i + 1) * 2 * MS, to_c, attributes=status)
        if i % 2 == 0:
            to_d = services.span(a, SpanKind.CLIENT, t + 5 * MS, 3 * MS, root)
            services.span(d, SpanKind.SERVER, t + 6 * MS, (i // 2 + 1) * MS, to_d)
        if i < 4:
            peer = {"peer.service": gateway, "server.address": "pay.example"}
            services.span(a, SpanKind.CLIENT, t + 7 * MS, (5 + i) * MS, root, error=i == 3, attributes=peer)
        if i == 0:
            services.span(a, SpanKind.CLIENT, t + 8 * MS, 1 * MS, root, attributes={"server.address": cache})
            # A call inside one service is no edge.
            inner = services.span(a, SpanKind.CLIENT, t + 9 * MS, 2 * MS, root)
            services.span(a, SpanKind.SERVER, t + 10 * MS, 1 * MS, inner)
    # A call at `until` is outside the half-open window.
    late = ns(UNTIL)
    late_root = services.span(a, SpanKind.SERVER, late, 20 * MS)
    late_call = services.span(a, SpanKind.CLIENT, late + 1 * MS, 10 * MS, late_root)
    services.span(b, SpanKind.SERVER, late + 2 * MS, 5 * MS, late_call, error=True)
    services.flush()

    answer = graph(api)
    edges = edges_of(answer, prefix)
    assert set(edges) == {(a, b), (b, c), (a, d), (a, gateway), (a, cache)}
    expected = {
        (a, b): (10, 0.2, 95.5),  # p95 of 10..100 ms, linearly interpolated
        (b, c): (10, 0.1, 19.1),  # the 503 counts as an error
        (a, d): (5, 0.0, 4.8),
        (a, gateway): (4, 0.25, 7.85),  # the caller's view: no server span answered
        (a, cache): (1, 0.0, 1.0),  # named by server.address alone
    }
    for key, (requests, error_ratio, p95) in expected.items():
        edge = edges[key]
        assert edge["requests"] == requests, key
        assert edge["error_ratio"] == pytest.approx(error_ratio, abs=1e-12), key
        assert edge["p95_ms"] == pytest.approx(p95, abs=1e-9), key
        assert edge["mtls"] is None
        assert edge["sources"] == ["spans"]
    assert nodes_of(answer, prefix) == sorted([a, b, c, d, gateway, cache])
    # A window that ends before the last minute's calls leaves them out.
    shorter = edges_of(graph(api, SINCE, SINCE + timedelta(minutes=5)), prefix)
    assert shorter[(a, b)]["requests"] == 5
    assert shorter[(a, d)]["requests"] == 3


def metrics_request(resource: dict[str, Any], metrics: list[Metric]) -> bytes:
    request = ExportMetricsServiceRequest()
    resource_metrics = request.resource_metrics.add()
    resource_metrics.resource.attributes.extend(key_values(resource))
    resource_metrics.scope_metrics.add().metrics.extend(metrics)
    return request.SerializeToString()


def counter(
    name: str, attributes: dict[str, str], points: list[tuple[int, float]], temporality: int = CUMULATIVE
) -> Metric:
    """A monotonic sum with one point per (seconds after SINCE, value), as the prometheus receiver makes them."""
    metric = Metric(name=name)
    metric.sum.is_monotonic = True
    metric.sum.aggregation_temporality = temporality  # type: ignore[assignment]
    start = ns(SINCE - timedelta(hours=1))
    for offset, value in points:
        point = metric.sum.data_points.add()
        point.attributes.extend(key_values(attributes))
        point.start_time_unix_nano = start
        point.time_unix_nano = ns(SINCE + timedelta(seconds=offset))
        point.as_double = value
    return metric


def histogram(
    name: str, attributes: dict[str, str], bounds: list[float], points: list[tuple[int, list[int]]]
) -> Metric:
    """A cumulative histogram with one point per (seconds after SINCE, bucket counts)."""
    metric = Metric(name=name)
    metric.histogram.aggregation_temporality = CUMULATIVE  # type: ignore[assignment]
    start = ns(SINCE - timedelta(hours=1))
    for offset, buckets in points:
        point = metric.histogram.data_points.add()
        point.attributes.extend(key_values(attributes))
        point.start_time_unix_nano = start
        point.time_unix_nano = ns(SINCE + timedelta(seconds=offset))
        point.count = sum(buckets)
        point.sum = 0.0
        point.bucket_counts.extend(buckets)
        point.explicit_bounds.extend(bounds)
    return metric


def post_metrics(api: httpx.Client, body: bytes) -> None:
    response = api.post("/v1/metrics", content=body, headers={"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200, response.text


def replica(instance: str) -> dict[str, str]:
    """A scraped pod's resource: the receiver puts job and instance there, so replicas differ only here."""
    return {"service.name": "kubernetes-pods", "service.instance.id": instance}


def test_istio_counters_become_edges_across_replicas_and_resets(server: Server, api: httpx.Client, prefix: str) -> None:
    front, cart, web = (f"{prefix}-{name}" for name in ("front", "cart", "web"))
    labels = {
        "reporter": "destination", "source_workload": front, "source_canonical_service": front,
        "destination_workload": cart, "destination_canonical_service": cart,
        "connection_security_policy": "mutual_tls", "response_code": "200", "request_protocol": "http",
    }  # fmt: skip
    failed = {**labels, "response_code": "503"}
    seen_by_caller = {**labels, "reporter": "source"}
    # From outside the mesh's identities: no workload name, and plain text.
    plain = {**labels, "source_workload": "unknown", "source_canonical_service": web,
             "connection_security_policy": "none"}  # fmt: skip
    requests = "istio_requests_total"
    duration = "istio_request_duration_milliseconds"
    bounds = [5.0, 10.0, 25.0, 50.0, 100.0]
    post_metrics(api, metrics_request(replica("10.0.0.1:15020"), [
        # 100 before the window is the baseline; +10 +20, a reset to 5 (counts 5), +10; the point at `until` is out.
        counter(requests, labels, [(-60, 100), (60, 110), (120, 130), (180, 5), (240, 15), (3600, 1000)]),
        counter(requests, failed, [(-60, 3), (120, 8)]),
        counter(requests, seen_by_caller, [(-60, 0), (60, 999)]),  # the source's report: not counted
        counter(requests, plain, [(0, 10), (600, 25)]),
        histogram(duration, labels, bounds, [(-60, [10, 10, 0, 0, 0, 0]), (120, [10, 20, 30, 5, 0, 0])]),
    ]))  # fmt: skip
    post_metrics(api, metrics_request(replica("10.0.0.2:15020"), [
        # No point before the window: counting starts at its first point.
        counter(requests, labels, [(60, 50), (120, 58), (180, 70)]),
        histogram(duration, labels, bounds, [(60, [5, 5, 5, 0, 0, 0]), (180, [1, 0, 0, 0, 0, 0])]),  # a reset
    ]))  # fmt: skip
    # The spans see three of those calls: the mesh's count wins, and both witnesses are named.
    services = Services(server, front, cart)
    for i in range(3):
        t = ns(SINCE + timedelta(minutes=i))
        call = services.span(front, SpanKind.CLIENT, t, 30 * MS)
        services.span(cart, SpanKind.SERVER, t + MS, 20 * MS, call, error=i == 0)
    services.flush()

    edges = edges_of(graph(api), prefix)
    assert set(edges) == {(front, cart), (web, cart)}
    secured = edges[(front, cart)]
    assert secured["requests"] == 45 + 20 + 5
    assert secured["error_ratio"] == pytest.approx(5 / 70, abs=1e-12)
    # Buckets summed over replicas: [1, 10, 30, 5, 0, 0]; rank 43.7 lies in (25, 50].
    assert secured["p95_ms"] == pytest.approx(38.5, abs=1e-9)
    assert secured["mtls"] is True
    assert secured["sources"] == ["istio", "spans"]
    unsecured = edges[(web, cart)]
    assert (unsecured["requests"], unsecured["error_ratio"], unsecured["p95_ms"]) == (15, 0.0, None)
    assert unsecured["mtls"] is False
    assert unsecured["sources"] == ["istio"]


def test_linkerd_outbound_counters_become_edges(api: httpx.Client, prefix: str) -> None:
    source, destination = f"{prefix}-api", f"{prefix}-db"
    labels = {
        "direction": "outbound", "deployment": source, "dst_deployment": destination, "namespace": "shop",
        "dst_namespace": "shop", "tls": "true", "classification": "success", "status_code": "200",
    }  # fmt: skip
    failure = {**labels, "classification": "failure", "status_code": "500"}
    inbound = {**labels, "direction": "inbound"}
    bounds = [10.0, 20.0, 50.0]
    post_metrics(api, metrics_request(replica("10.0.1.1:4191"), [
        counter("response_total", {**labels, "pod": "api-1"}, [(30, 200), (90, 260), (150, 300)]),
        counter("response_total", {**failure, "pod": "api-1"}, [(-30, 1), (90, 4)]),
        counter("response_total", {**inbound, "pod": "api-1"}, [(30, 0), (90, 500)]),
        histogram(
            "response_latency_ms", {**labels, "pod": "api-1"}, bounds, [(30, [0, 0, 0, 0]), (150, [50, 40, 10, 0])]
        ),
    ]))  # fmt: skip
    post_metrics(api, metrics_request(replica("10.0.1.2:4191"), [
        # Delta points just add up, those before the window left out.
        counter("response_total", {**labels, "pod": "api-2"}, [(-60, 100), (60, 7), (120, 5)], DELTA),
    ]))  # fmt: skip

    answer = graph(api)
    edge = edges_of(answer, prefix)[(source, destination)]
    assert edge == {
        "source": source, "destination": destination, "requests": 115.0, "error_ratio": pytest.approx(3 / 115),
        "p95_ms": pytest.approx(35.0), "mtls": True, "sources": ["linkerd"],
    }  # fmt: skip
    assert nodes_of(answer, prefix) == [source, destination]

    # The CLI shows the same edge, as a table for people and as JSON for scripts.
    window = ("--since", iso(SINCE), "--until", iso(UNTIL), "--url", str(api.base_url))
    env = {**os.environ, "COLUMNS": "200"}
    table = subprocess.run(correlator_command("topology", *window), capture_output=True, text=True, env=env, timeout=60)
    assert table.returncode == 0, table.stderr
    assert f"{source} " in table.stdout
    assert "2.61%" in table.stdout  # 3 / 115
    assert "35.0" in table.stdout
    printed = subprocess.run(
        correlator_command("topology", *window, "--json"), capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0, printed.stderr
    assert edges_of(json.loads(printed.stdout), prefix) == edges_of(answer, prefix)
    refused = subprocess.run(
        correlator_command("topology", "--since", iso(UNTIL), "--until", iso(SINCE), "--url", str(api.base_url)),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "error" in refused.stderr


def test_a_reversed_or_too_long_window_is_refused(api: httpx.Client) -> None:
    reversed_window = api.get("/api/v1/topology", params={"since": iso(UNTIL), "until": iso(SINCE)})
    assert reversed_window.status_code == 400
    assert reversed_window.json()["error"]["type"] == "bad_request"
    too_long = api.get("/api/v1/topology", params={"since": "100d"})
    assert too_long.status_code == 400


def test_an_empty_window_is_an_empty_graph(api: httpx.Client) -> None:
    empty = datetime(2001, 1, 1, tzinfo=UTC)
    assert graph(api, empty, empty + timedelta(hours=1)) == {"nodes": [], "edges": []}


# The merge itself, on frames as the queries return them.


def _requests_frame(rows: list[tuple[str, str, str, bool, bool, float]]) -> pl.DataFrame:
    schema = ["mesh", "source", "destination", "failed", "secure", "requests"]
    return pl.DataFrame(rows, schema=schema, orient="row")


def _latency_frame(rows: list[tuple[str, str, str, list[float], list[int]]]) -> pl.DataFrame:
    schema = {"mesh": pl.String, "source": pl.String, "destination": pl.String,
              "bounds": pl.List(pl.Float64), "buckets": pl.List(pl.Int64)}  # fmt: skip
    return pl.DataFrame(rows, schema=list(schema.items()), orient="row")


def test_istio_wins_over_linkerd_and_spans_and_mixed_tls_is_not_mtls() -> None:
    meshes = mesh_witnesses(
        _requests_frame([
            ("istio", "x", "y", False, True, 90.0), ("istio", "x", "y", True, False, 10.0),
            ("linkerd", "x", "y", False, True, 50.0), ("linkerd", "y", "z", False, True, 0.0),
        ]),
        _latency_frame([("linkerd", "x", "y", [10.0], [4, 0])]),
    )  # fmt: skip
    spans = {("x", "y"): Witness(7, 1, 12.0, None), ("y", "z"): Witness(3, 0, 2.0, None)}
    assert merge_witnesses(spans, meshes) == [
        # Istio's count; Istio has no histogram here, so Linkerd's p95 (of 4 observations up to 10 ms) stands in.
        Edge("x", "y", 100.0, 0.1, 9.5, False, ("istio", "linkerd", "spans")),
        Edge("y", "z", 3, 0.0, 2.0, None, ("spans",)),  # a counter that did not move is no witness
    ]


def test_calls_nobody_answered_add_to_the_spans_witness() -> None:
    schema = {"source": pl.String, "destination": pl.String, "requests": pl.Int64, "errors": pl.Int64,
              "p95_ms": pl.Float64}  # fmt: skip
    answered = pl.DataFrame([("a", "b", 10, 2, 95.5)], schema=list(schema.items()), orient="row")
    # Two calls to b were refused before b saw them; the gateway never answers anyone.
    unanswered = pl.DataFrame(
        [("a", "b", 2, 2, 30.0), ("a", "gateway", 4, 1, 7.85)], schema=list(schema.items()), orient="row"
    )
    assert span_witnesses(answered, unanswered) == {
        ("a", "b"): Witness(12, 4, 95.5, None),  # the p95 stays the callee's
        ("a", "gateway"): Witness(4, 1, 7.85, None),
    }


@pytest.mark.parametrize(
    ("bounds", "counts", "expected"),
    [
        pytest.param([10.0, 20.0], [0, 10, 0], 19.5, id="inside-a-bucket"),
        pytest.param([10.0, 20.0], [0, 0, 5], 20.0, id="above-every-bound"),
        pytest.param([10.0, 20.0], [20, 0, 0], 9.5, id="first-bucket-starts-at-zero"),
        pytest.param([10.0, 20.0], [0, 0, 0], None, id="no-observations"),
    ],
)
def test_histogram_quantile_like_prometheus(bounds: list[float], counts: list[int], expected: float | None) -> None:
    assert histogram_quantile(0.95, bounds, counts) == expected
