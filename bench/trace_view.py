"""Trace view latency on a large store: `GET /api/v1/traces/{id}` p50/p95/p99, and the reads behind one view.

Run: .venv/bin/python -m bench.trace_view [--traces 300000] [--days 3] [--requests 300]

An in-process server on a fresh data directory; the data is generated inside its engine (INSERT ... SELECT
from numbers(), as ARCHITECTURE.md asks of benchmarks): `--traces` traces of 10 spans over 20 services spread
over `--days` days, 5 logs per trace, and a sum metric per (service, name, minute) whose points carry exemplars
of the traces of that minute. Then it asks for random traces over HTTP and reports the latencies, and counts and
times the store reads of one view.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from correlator.api.server import Server
from correlator.settings import Settings
from correlator.store import Store

SPANS_PER_TRACE = 10
LOGS_PER_TRACE = 5
SERVICES = 20
METRICS_PER_SERVICE = 10
START = "2026-01-01 00:00:00"

TRACE_ID = "lower(hex(MD5(toString({n}))))"

SPANS = f"""
INSERT INTO @traces (Timestamp, TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName,
    ResourceAttributes, SpanAttributes, Duration, StatusCode, StatusMessage)
SELECT
    toDateTime64({{start:String}}, 9) + toIntervalMillisecond(intDiv(number, {SPANS_PER_TRACE}) * {{step_ms:UInt64}}
        + (number % {SPANS_PER_TRACE}) * 7) AS Timestamp,
    {TRACE_ID.format(n="intDiv(number, " + str(SPANS_PER_TRACE) + ")")} AS TraceId,
    substring(lower(hex(MD5(toString(number)))), 1, 16) AS SpanId,
    if(number % {SPANS_PER_TRACE} = 0, '', substring(lower(hex(MD5(toString(number - 1)))), 1, 16)),
    concat('op-', toString(number % 37)),
    if(number % {SPANS_PER_TRACE} = 0, 'Server', if(number % 2 = 0, 'SPAN_KIND_CLIENT', 'Internal')),
    concat('svc-', toString((intDiv(number, {SPANS_PER_TRACE}) + number % {SPANS_PER_TRACE}) % {SERVICES})) AS svc,
    map('service.name', svc, 'service.version', '1.0.0', 'host.name', concat('host-', toString(number % 50)),
        'telemetry.sdk.language', 'python', 'deployment.environment.name', 'production'),
    map('http.route', concat('/api/', toString(number % 37)), 'http.response.status_code', '200'),
    (100 - (number % {SPANS_PER_TRACE}) * 9) * 1000000,
    if(number % 997 = 0, 'Error', 'Unset'),
    ''
FROM numbers({{spans:UInt64}})
"""

LOGS = f"""
INSERT INTO @logs (Timestamp, TraceId, SpanId, SeverityText, SeverityNumber, ServiceName, Body,
    ResourceAttributes, LogAttributes)
SELECT
    toDateTime64({{start:String}}, 9) + toIntervalMillisecond(intDiv(number, {LOGS_PER_TRACE}) * {{step_ms:UInt64}}
        + (number % {LOGS_PER_TRACE}) * 11),
    {TRACE_ID.format(n="intDiv(number, " + str(LOGS_PER_TRACE) + ")")},
    substring(lower(hex(MD5(toString(intDiv(number, {LOGS_PER_TRACE}) * {SPANS_PER_TRACE}
        + number % {LOGS_PER_TRACE})))), 1, 16),
    'INFO', 9,
    concat('svc-', toString((intDiv(number, {LOGS_PER_TRACE}) + number % {LOGS_PER_TRACE}) % {SERVICES})) AS svc,
    concat('handled request ', toString(number)),
    map('service.name', svc, 'service.version', '1.0.0'),
    map('code.function', 'handle')
FROM numbers({{logs:UInt64}})
"""

# One point per (service, metric, minute); each carries exemplars of two traces of that minute.
METRICS = f"""
INSERT INTO @sums (ServiceName, MetricName, ResourceAttributes, Attributes, StartTimeUnix, TimeUnix, Value,
    Exemplars.FilteredAttributes, Exemplars.TimeUnix, Exemplars.Value, Exemplars.SpanId, Exemplars.TraceId,
    AggregationTemporality, IsMonotonic)
SELECT
    concat('svc-', toString(number % {SERVICES})),
    concat('requests.', toString(intDiv(number, {SERVICES}) % {METRICS_PER_SERVICE})),
    map('service.name', concat('svc-', toString(number % {SERVICES}))),
    map('route', '/'),
    toDateTime({{start:String}}) + toIntervalMinute(intDiv(number, {SERVICES * METRICS_PER_SERVICE})) AS t,
    t + 60,
    number % 100,
    [map(), map()],
    [t + 1, t + 2],
    [1.5, 2.5],
    ['0000000000000001', '0000000000000002'],
    [{TRACE_ID.format(n="intDiv(number, " + str(SERVICES * METRICS_PER_SERVICE) + ") * {per_minute:UInt64}")},
     {TRACE_ID.format(n="intDiv(number, " + str(SERVICES * METRICS_PER_SERVICE) + ") * {per_minute:UInt64} + 1")}],
    1, true
FROM numbers({{points:UInt64}})
"""


def generate(store: Store, traces: int, days: int) -> None:
    """Fill the store inside the engine; prints what it wrote and how long it took."""
    step_ms = days * 86_400_000 // traces
    minutes = days * 1440
    common = {"start": START, "step_ms": step_ms}
    for label, sql, parameters in (
        ("spans", SPANS.replace("@traces", store.table("otel_traces")), {"spans": traces * SPANS_PER_TRACE}),
        ("logs", LOGS.replace("@logs", store.table("otel_logs")), {"logs": traces * LOGS_PER_TRACE}),
        (
            "metric points",
            METRICS.replace("@sums", store.table("otel_metrics_sum")),
            {"points": minutes * SERVICES * METRICS_PER_SERVICE, "per_minute": max(1, traces // minutes)},
        ),
    ):
        began = time.perf_counter()
        store.command(sql, {**common, **parameters})
        count = next(iter(parameters.values()))
        print(f"  {label:14s} {count:>12,} in {time.perf_counter() - began:6.1f} s", file=sys.stderr)


def counting(store: Store) -> list[float]:
    """Wrap the store's reads to time each; returns the list they are appended to."""
    timings: list[float] = []
    read = store.rows

    def rows(sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        began = time.perf_counter()
        try:
            return read(sql, parameters)
        finally:
            timings.append((time.perf_counter() - began) * 1000)

    store.rows = rows  # type: ignore[method-assign]
    return timings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--traces", type=int, default=300_000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="bench-trace-view-")) / "data"
    # No background reconciler: its reads would be counted as the view's. The route reconciles before each view,
    # which reads nothing here: the store takes no write between the views.
    settings = Settings(
        clickhouse_dsn=f"chdb://{data_dir}",
        http_port=0,
        otlp_http_port=0,
        otlp_grpc_port=0,
        deploys_reconcile_interval_s=0,
    )
    server = Server(settings, log_level="warning").start()
    try:
        assert server.state is not None
        store = server.state.store
        print(f"generating {args.traces:,} traces over {args.days} days", file=sys.stderr)
        generate(store, args.traces, args.days)
        began = time.perf_counter()
        server.state.deploys.reconcile()  # the implicit deploys of the generated versions, once
        print(f"  reconcile      {time.perf_counter() - began:21.1f} s", file=sys.stderr)
        # Half of them random traces, half traces whose exemplars the metric points carry.
        rng, minutes = random.Random(7), args.days * 1440
        per_minute = max(1, args.traces // minutes)
        sample = rng.sample(range(args.traces), args.requests - args.requests // 2) + [
            m * per_minute for m in rng.sample(range(min(minutes, args.traces // per_minute)), args.requests // 2)
        ]
        rng.shuffle(sample)
        ids = [store.rows("SELECT " + TRACE_ID.format(n="{n:UInt64}"), {"n": n})[0][0] for n in sample]
        timings = counting(store)
        port = server.ports["http"]

        def get(path: str) -> tuple[int, bytes]:
            # A connection per request, as the CLI makes: a kept-alive connection to this server waits out the
            # client's delayed ACK (40 ms) on every response while its listening socket lacks TCP_NODELAY.
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        get(f"/api/v1/traces/{ids[0]}")  # warm-up: the first reads open the parts
        latencies, reads = [], []
        for trace_id in ids:
            timings.clear()
            began = time.perf_counter()
            status, payload = get(f"/api/v1/traces/{trace_id}")
            latencies.append((time.perf_counter() - began) * 1000)
            assert status == 200, payload
            reads.append(list(timings))
        body = json.loads(payload)
        print(
            f"store: {args.traces * SPANS_PER_TRACE:,} spans, {args.traces * LOGS_PER_TRACE:,} logs, "
            f"{args.days * 1440 * SERVICES * METRICS_PER_SERVICE:,} metric points over {args.days} days; "
            f"the last view: {len(body['spans'])} spans, {len(body['logs'])} logs, {len(body['exemplars'])} exemplars"
        )
        print(
            f"GET /api/v1/traces/{{id}} x{len(latencies)}: p50 {percentile(latencies, 0.5):.1f} ms, "
            f"p95 {percentile(latencies, 0.95):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms, "
            f"max {max(latencies):.1f} ms"
        )
        counts = {len(r) for r in reads}
        per_read = [statistics.median(r[i] for r in reads if len(r) > i) for i in range(max(counts))]
        print(
            f"store reads per request: {sorted(counts)} (in the order they returned: the trace's range, then pairs"
            " of reads side by side; no reconcile read, as the store took no write); "
            f"median ms per read: {', '.join(f'{ms:.1f}' for ms in per_read)}"
        )
    finally:
        server.stop()
        shutil.rmtree(data_dir.parent, ignore_errors=True)


if __name__ == "__main__":
    main()
