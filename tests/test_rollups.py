"""The per-minute tables (migration 4) answer what a scan of the spans answers: RED, p95 baselines, top endpoints,
top errors and a service's minutes, for windows on whole minutes and for windows that are not."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from correlator.api.server import Server
from correlator.service.topology import SPAN_SLACK, _counts_around, service_topology
from correlator.store import Store
from correlator.store import analysis_queries as aq
from correlator.store import health_queries as hq
from correlator.store.ddl import InsertSelect
from correlator.store.migrate import target_for
from correlator.store.schema_rollups import ROLLUP_TABLES
from correlator.store.telemetry_sql import ERROR_SHAPE, ERROR_TYPE, IN_WINDOW, IS_ERROR, IS_REQUEST

START = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=30)

# Spans over 3 hours from START, a row every ~1.3 s: three services, three endpoints, both kind and status
# spellings, errors by status, by HTTP 5xx (either attribute) and with exception events whose messages vary
# only in numbers; client spans too, which are no requests.
SPANS = """
INSERT INTO $traces (Timestamp, TraceId, SpanId, ServiceName, SpanName, SpanKind, StatusCode, StatusMessage,
    SpanAttributes, Duration, `Events.Timestamp`, `Events.Name`, `Events.Attributes`)
SELECT
    fromUnixTimestamp64Nano({start_ns:Int64} + toInt64(n) * 1300000000 + toInt64(n % 7) * 1000000) AS ts,
    lower(hex(MD5(concat({prefix:String}, toString(n))))),
    lower(hex(substring(MD5(toString(n)), 1, 8))),
    concat({prefix:String}, ['a', 'b', 'c'][1 + n % 3]),
    ['GET /orders', 'POST /cart', 'GET /users/:id'][1 + intDiv(n, 3) % 3],
    ['Server', 'SPAN_KIND_SERVER', 'Consumer', 'Client', 'Server'][1 + n % 5],
    if(n % 17 = 0, ['Error', 'STATUS_CODE_ERROR'][1 + n % 2], 'Unset'),
    if(n % 17 = 0, concat('order ', toString(n), ' not found'), ''),
    if(n % 23 = 0, map(['http.response.status_code', 'http.status_code'][1 + n % 2], '503'), map()),
    toUInt64(1000000 * (5 + (cityHash64(n) % 400))),
    if(n % 34 = 0, [ts], []),
    if(n % 34 = 0, ['exception'], []),
    if(n % 34 = 0, [map('exception.type', 'KeyError', 'exception.message', concat('key ', toString(n)))], [])
FROM (SELECT number AS n FROM numbers({first:UInt64}, {count:UInt64}))
"""

RAW_RED = f"""
SELECT ServiceName, count(), countIf({IS_ERROR}), quantiles(0.5, 0.95, 0.99)(Duration)
FROM $traces WHERE {IN_WINDOW} AND {IS_REQUEST} AND startsWith(ServiceName, {{prefix:String}})
GROUP BY ServiceName ORDER BY ServiceName
"""
RAW_ENDPOINTS = f"""
SELECT ServiceName, SpanName, count(), countIf({IS_ERROR}) / count(), quantile(0.95)(Duration) / 1e6
FROM $traces WHERE {IN_WINDOW} AND {IS_REQUEST} AND startsWith(ServiceName, {{prefix:String}})
GROUP BY ServiceName, SpanName ORDER BY ServiceName, SpanName
"""
RAW_ERRORS = f"""
SELECT ServiceName, {ERROR_TYPE} AS type, {ERROR_SHAPE} AS message, count()
FROM $traces WHERE {IN_WINDOW} AND {IS_REQUEST} AND {IS_ERROR} AND startsWith(ServiceName, {{prefix:String}})
GROUP BY ServiceName, type, message ORDER BY ServiceName, type, message
"""
RAW_MINUTES = f"""
SELECT toStartOfMinute(Timestamp) AS minute, count(), countIf({IS_ERROR}), quantile(0.95)(Duration) / 1e6
FROM $traces WHERE ServiceName = {{service:String}} AND {IN_WINDOW} AND {IS_REQUEST}
GROUP BY minute ORDER BY minute
"""

WINDOWS = [
    pytest.param(START + timedelta(minutes=20), START + timedelta(minutes=80), id="whole-minutes"),
    pytest.param(START + timedelta(minutes=20, seconds=13.5), START + timedelta(minutes=80, seconds=41), id="ragged"),
    pytest.param(START + timedelta(minutes=5, seconds=2), START + timedelta(minutes=5, seconds=50), id="one-partial"),
    pytest.param(START - timedelta(hours=1), START + timedelta(hours=4), id="everything"),
]


@pytest.fixture(scope="module")
def scenario(server: Server) -> tuple[Store, str]:
    """Three services' spans, inserted in three blocks that share minutes (the view aggregates each block)."""
    assert server.state is not None
    store, prefix = server.state.store, f"rollup-{uuid.uuid4().hex[:6]}-"
    start_ns = int(START.timestamp()) * 1_000_000_000
    for first, count in ((0, 3000), (3000, 2000), (5000, 3300)):
        parameters = {"start_ns": start_ns, "prefix": prefix, "first": first, "count": count}
        store.command(store.sql(SPANS, traces="otel_traces"), parameters)
    return store, prefix


def _raw(store: Store, template: str, since: datetime, until: datetime, **more: Any) -> list[tuple[Any, ...]]:
    return store.rows(store.sql(template, traces="otel_traces"), {"since": since, "until": until, **more})


def _services(prefix: str) -> list[str]:
    return [prefix + name for name in "abc"]


def _sorted_rows(frame: pl.DataFrame, *keys: str) -> list[tuple[Any, ...]]:
    return list(frame.sort(*keys).iter_rows())


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_red_and_baseline_from_minutes_equal_the_spans(
    scenario: tuple[Store, str], since: datetime, until: datetime
) -> None:
    store, prefix = scenario
    raw = _raw(store, RAW_RED, since, until, prefix=prefix)
    assert raw or until - since < timedelta(minutes=1)
    expected = [(s, n, e, q[0] / 1e6, q[1] / 1e6, q[2] / 1e6) for s, n, e, q in raw]
    assert _sorted_rows(hq.red(store, _services(prefix), since, until), "service") == expected
    assert _sorted_rows(hq.baseline_p95(store, _services(prefix), since, until), "service") == [
        (s, p95) for s, _, _, _, p95, _ in expected
    ]


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_top_endpoints_and_errors_from_minutes_equal_the_spans(
    scenario: tuple[Store, str], since: datetime, until: datetime
) -> None:
    store, prefix = scenario
    endpoints = hq.top_endpoints(store, _services(prefix), since, until, per_service=10)
    assert _sorted_rows(endpoints, "service", "name") == _raw(store, RAW_ENDPOINTS, since, until, prefix=prefix)
    errors = hq.top_errors(store, _services(prefix), since, until, per_service=1000)
    assert _sorted_rows(errors, "service", "type", "message") == _raw(store, RAW_ERRORS, since, until, prefix=prefix)
    if until - since > timedelta(hours=1):
        assert {t for t in errors["type"]} == {"error", "HTTP 503", "KeyError"}
        assert "order <n> not found" in set(errors["message"])


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_a_services_minutes_equal_the_spans(scenario: tuple[Store, str], since: datetime, until: datetime) -> None:
    store, prefix = scenario
    service = prefix + "b"
    raw = _raw(store, RAW_MINUTES, since, until, service=service)
    minutes = aq.minutes(store, service, since, until)
    assert [(m.replace(tzinfo=None), n, e, p) for m, n, e, p in minutes.iter_rows()] == [
        (m.replace(tzinfo=None), n, e, p) for m, n, e, p in raw
    ]


def test_the_migration_copies_spans_stored_before_it(server: Server) -> None:
    """What migration 4 copies into the per-minute tables equals what their views would have written."""
    assert server.state is not None
    store, prefix = server.state.store, f"rollup-{uuid.uuid4().hex[:6]}-"
    start_ns = int((START - timedelta(days=2)).timestamp()) * 1_000_000_000
    store.command(
        store.sql(SPANS, traces="otel_traces"), {"start_ns": start_ns, "prefix": prefix, "first": 0, "count": 900}
    )
    copies = [op for op in ROLLUP_TABLES.operations if isinstance(op, InsertSelect)]
    assert {c.to_table for c in copies} == {
        "service_minutes",
        "service_hours",
        "service_red_minutes",
        "service_error_minutes",
        "span_minutes",
        "call_spans",
    }
    read: dict[str, Callable[[str], list[tuple[Any, ...]]]] = {
        "service_hours": lambda table: store.rows(
            f"SELECT ServiceName, Hour, sum(Requests), sum(Errors), quantilesMerge(0.5, 0.95, 0.99)(Duration)"
            f" FROM {table} WHERE startsWith(ServiceName, {{p:String}}) GROUP BY ALL ORDER BY ALL",
            {"p": prefix},
        ),
        "service_minutes": lambda table: store.rows(
            f"SELECT ServiceName, Minute, sum(Requests), sum(Errors), quantilesMerge(0.5, 0.95, 0.99)(Duration)"
            f" FROM {table} WHERE startsWith(ServiceName, {{p:String}}) GROUP BY ALL ORDER BY ALL",
            {"p": prefix},
        ),
        "service_red_minutes": lambda table: store.rows(
            f"SELECT ServiceName, Minute, SpanName, sum(Requests), sum(Errors),"
            f" quantilesMerge(0.5, 0.95, 0.99)(Duration) FROM {table} WHERE startsWith(ServiceName, {{p:String}})"
            " GROUP BY ALL ORDER BY ALL",
            {"p": prefix},
        ),
        "service_error_minutes": lambda table: store.rows(
            f"SELECT ServiceName, Minute, Type, Message, sum(Count), min(FirstSeen) FROM {table}"
            " WHERE startsWith(ServiceName, {p:String}) GROUP BY ALL ORDER BY ALL",
            {"p": prefix},
        ),
        "call_spans": lambda table: store.rows(
            f"SELECT * FROM {table} WHERE startsWith(ServiceName, {{p:String}}) ORDER BY ALL", {"p": prefix}
        ),
        # Every span counts there, whoever sent it: compare the minutes of these spans only.
        "span_minutes": lambda table: store.rows(
            f"SELECT Minute, ServiceName, sum(Spans) FROM {table} WHERE Minute >= {{a:DateTime('UTC')}}"
            " AND Minute < {a:DateTime('UTC')} + INTERVAL 20 MINUTE GROUP BY ALL ORDER BY ALL",
            {"a": START - timedelta(days=2)},
        ),
    }
    for copy in copies:
        scratch = f"scratch_{uuid.uuid4().hex[:8]}"
        store.command(f"CREATE TABLE otel.{scratch} AS {store.table(copy.to_table)}")
        try:
            store.command(f"INSERT INTO otel.{scratch} " + copy.select_sql(target_for(store.config.database)))
            assert read[copy.to_table](f"otel.{scratch}") == read[copy.to_table](store.table(copy.to_table))
        finally:
            store.command(f"DROP TABLE otel.{scratch}")


# Calls from `a` to `b` (answered by b's server span 0 to 40 s later) and from `b` to `c`, plus calls from `a`
# to the database `db` that nothing answers; one trace per row, a row every 7 s.
CALLS = """
INSERT INTO $traces (Timestamp, TraceId, SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, StatusCode,
    SpanAttributes, Duration)
SELECT fromUnixTimestamp64Nano({start_ns:Int64} + toInt64(n) * 7000000000 + toInt64(side.3) * 1000000000),
    lower(hex(MD5(concat({prefix:String}, toString(n))))), concat(side.1, toString(n)), side.2,
    concat({prefix:String}, side.4), 'call', side.5, if(n % 13 = 0 AND side.5 = 'Server', 'Error', 'Unset'),
    if(side.4 = 'a' AND side.1 = 'd', map('peer.service', 'db'), map()), toUInt64(1000000 * (3 + n % 50))
FROM (SELECT number AS n FROM numbers({first:UInt64}, {count:UInt64}))
ARRAY JOIN [
    ('c', '', 0, 'a', 'Client'),
    ('s', concat('c', toString(n)), toInt64(n % 41), 'b', 'Server'),
    ('k', concat('s', toString(n)), toInt64(n % 41), 'b', 'Client'),
    ('t', concat('k', toString(n)), toInt64(n % 41) + 1, 'c', 'Server'),
    ('d', '', 2, 'a', 'Client')
] AS side
"""


def _span_edges(topology: Any, prefix: str) -> list[tuple[Any, ...]]:
    return [
        (e.source, e.destination, e.requests, e.error_ratio, e.p95_ms, e.sources)
        for e in topology.edges
        if e.source.startswith(prefix)
    ]


def test_the_edge_cache_answers_what_the_spans_answer_and_notices_late_spans(server: Server) -> None:
    assert server.state is not None
    store, prefix = server.state.store, f"edges-{uuid.uuid4().hex[:6]}-"
    start = START - timedelta(days=1)
    since, until = start + timedelta(minutes=10), start + timedelta(minutes=50)
    insert = store.sql(CALLS, traces="otel_traces")
    store.command(insert, {"start_ns": int(start.timestamp()) * 10**9, "prefix": prefix, "first": 0, "count": 600})
    long_after, before = until + timedelta(days=1), since  # every minute closed; none yet

    def live() -> list[tuple[Any, ...]]:
        return _span_edges(service_topology(store, since, until, now=before), prefix)

    fresh = live()
    assert [(s[len(prefix) :], d.removeprefix(prefix)) for s, d, *_ in fresh] == [("a", "db"), ("a", "b"), ("b", "c")]
    first = _span_edges(service_topology(store, since, until, now=long_after), prefix)  # computes, caches
    runs = store.rows(
        "SELECT count() FROM otel.edge_minute_runs"
        " WHERE Minute >= {a:DateTime('UTC')} AND Minute < {b:DateTime('UTC')}",
        {"a": since, "b": until},
    )
    assert runs[0][0] >= 40
    assert first == fresh
    assert _span_edges(service_topology(store, since, until, now=long_after), prefix) == fresh  # from the cache
    # Late spans in the middle of the window (copies of 30 traces): the minutes around them are computed again.
    store.command(insert, {"start_ns": int(start.timestamp()) * 10**9, "prefix": prefix, "first": 200, "count": 30})
    late = _span_edges(service_topology(store, since, until, now=long_after), prefix)
    assert late == live()
    assert late[1][2] == fresh[1][2] + 90  # a -> b: each copied server span pairs with both clients, and back


def test_the_span_counts_around_each_minute_are_the_counts_within_the_slack() -> None:
    since = datetime(2026, 3, 1, tzinfo=UTC)
    minute = timedelta(minutes=1)
    counts = {since + k * minute: k + 1 for k in range(-8, 40, 3)}  # sparse, some before the window
    expected = [
        (since + i * minute, sum(n for m, n in counts.items() if abs(m - since - i * minute) <= SPAN_SLACK))
        for i in range(30)
    ]
    assert list(_counts_around(counts, since, since + 30 * minute)) == expected
    assert expected[0][1] > 0
    assert expected[-1][1] > 0
