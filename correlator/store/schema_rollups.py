"""Per-minute pre-aggregations of otel_traces that the service list and the incident view read instead of spans.

Kept by materialized views, so they fill on every insert, whoever writes (the correlator or collectors going
straight to ClickHouse). Only what the read benchmarks asked for (docs/benchmarks.md, "Read queries"):
- `service_minutes`: requests, failed requests and a duration quantile state per (service, minute) of server and
  consumer spans; answers RED, the 24-hour p95 baseline and an incident's per-minute series.
- `service_hours`: `service_minutes` rolled up by the hour, by a view on it, for the day-long p95 baseline.
- `service_red_minutes`: the same per (service, minute, span name), for top endpoints. Reading a day of it for
  the p95 baseline merged six times as many states as `service_minutes` does (0.4 s against 0.07 s on 10 M spans),
  hence the two.
- `service_error_minutes`: failed requests per (service, minute, error type, message shape), for top errors.
- `span_minutes`: spans stored per (minute of their start, service), whatever their kind: how the edge cache
  below knows that a minute it computed has not changed since, and which services sent spans in a window.
- `call_spans`: the two sides of every call, cut down to what pairs them (a 64-bit hash of the trace id and the
  client span's id) and what the topology counts, ordered by time: otel_traces puts time third in its sort key,
  so any time range across all services reads most of a day's granules there, maps included.
- `edge_minutes` and `edge_minute_runs`: the span witness of the topology per minute, a cache the correlator
  fills (store/topology_queries.py). A call's two spans arrive in different inserts, often through different
  collectors, so no view can pair them; the correlator pairs them once per closed minute instead, records how many
  spans the minute's neighbourhood held, and computes the minute again whenever that count has moved.
Reads take whole minutes from here and the partial minutes at a window's edges from otel_traces
(store/rollup_sql.py), so answers do not depend on windows being minute-aligned.

Durations are kept as `quantiles(0.5, 0.95, 0.99)` states: the same reservoir sampler as `quantile()` on the
raw spans, which holds every value up to 8,192 per state, so small windows answer exactly what the spans would.

Migration 4 also copies what otel_traces already held (one node only: on a cluster each shard would have to
run it against its own local tables, docs/cluster.md).
"""

from __future__ import annotations

from correlator.store.ddl import Column, CreateMaterializedView, CreateTable, InsertSelect, Migration
from correlator.store.schema_otel import TRACES
from correlator.store.telemetry_sql import ERROR_SHAPE, ERROR_TYPE, IS_CLIENT_CALL, IS_ERROR, IS_REQUEST, PEER_NAME

SERVICE_MINUTES = "service_minutes"
SERVICE_HOURS = "service_hours"
SERVICE_RED_MINUTES = "service_red_minutes"
SERVICE_ERROR_MINUTES = "service_error_minutes"
SPAN_MINUTES = "span_minutes"
CALL_SPANS = "call_spans"
EDGE_MINUTES = "edge_minutes"
EDGE_MINUTE_RUNS = "edge_minute_runs"

DURATION_STATE = "AggregateFunction(quantiles(0.5, 0.95, 0.99), UInt64)"
"""The duration (ns) column of the RED minutes; merge with quantilesMerge(0.5, 0.95, 0.99)."""

EDGE_DURATION_STATE = "AggregateFunction(quantile(0.95), UInt64)"
"""The duration (ns) column of the edge minutes; merge with quantileMerge(0.95)."""

# Small rows, read by service and time range: the finer granularity keeps one service's hour a few granules.
_ROLLUP_SETTINGS = "index_granularity = 1024"

_red_minutes = CreateTable(
    table=SERVICE_RED_MINUTES,
    columns=(
        Column("ServiceName", "LowCardinality(String)"),
        Column("Minute", "DateTime('UTC')"),
        Column("SpanName", "LowCardinality(String)"),
        Column("Requests", "SimpleAggregateFunction(sum, UInt64)"),
        Column("Errors", "SimpleAggregateFunction(sum, UInt64)"),
        Column("Duration", DURATION_STATE, codec=None),
    ),
    engine="AggregatingMergeTree",
    partition_by="toYYYYMM(Minute)",
    order_by="(ServiceName, Minute, SpanName)",
    settings=_ROLLUP_SETTINGS,
    # Written by the view on the node of its spans, like service_version_minutes (docs/cluster.md).
    sharding_key="rand64()",
)

_service_minutes = CreateTable(
    table=SERVICE_MINUTES,
    columns=(
        Column("ServiceName", "LowCardinality(String)"),
        Column("Minute", "DateTime('UTC')"),
        Column("Requests", "SimpleAggregateFunction(sum, UInt64)"),
        Column("Errors", "SimpleAggregateFunction(sum, UInt64)"),
        Column("Duration", DURATION_STATE, codec=None),
    ),
    engine="AggregatingMergeTree",
    partition_by="toYYYYMM(Minute)",
    order_by="(ServiceName, Minute)",
    settings=_ROLLUP_SETTINGS,
    sharding_key="rand64()",
)

_SERVICE_SELECT = f"""SELECT
    ServiceName,
    toStartOfMinute(Timestamp) AS Minute,
    count() AS Requests,
    countIf({IS_ERROR}) AS Errors,
    quantilesState(0.5, 0.95, 0.99)(Duration) AS Duration
FROM {{source}}
WHERE {IS_REQUEST}
GROUP BY ServiceName, Minute"""

_service_hours = CreateTable(
    table=SERVICE_HOURS,
    columns=(
        Column("ServiceName", "LowCardinality(String)"),
        Column("Hour", "DateTime('UTC')"),
        Column("Requests", "SimpleAggregateFunction(sum, UInt64)"),
        Column("Errors", "SimpleAggregateFunction(sum, UInt64)"),
        Column("Duration", DURATION_STATE, codec=None),
    ),
    engine="AggregatingMergeTree",
    partition_by="toYYYYMM(Hour)",
    order_by="(ServiceName, Hour)",
    settings=_ROLLUP_SETTINGS,
    sharding_key="rand64()",
)

# Fed by the blocks the minutes' view writes (or the migration copies), not by spans: no cost per span.
_HOURS_SELECT = """SELECT
    ServiceName,
    toStartOfHour(Minute) AS Hour,
    sum(Requests) AS Requests,
    sum(Errors) AS Errors,
    quantilesMergeState(0.5, 0.95, 0.99)(Duration) AS Duration
FROM {source}
GROUP BY ServiceName, Hour"""

_RED_SELECT = f"""SELECT
    ServiceName,
    toStartOfMinute(Timestamp) AS Minute,
    SpanName,
    count() AS Requests,
    countIf({IS_ERROR}) AS Errors,
    quantilesState(0.5, 0.95, 0.99)(Duration) AS Duration
FROM {{source}}
WHERE {IS_REQUEST}
GROUP BY ServiceName, Minute, SpanName"""


def _formattable(fragment: str) -> str:
    """A fragment with its braces (regular expression counts) doubled: view selects go through str.format."""
    return fragment.replace("{", "{{").replace("}", "}}")


_error_minutes = CreateTable(
    table=SERVICE_ERROR_MINUTES,
    columns=(
        Column("ServiceName", "LowCardinality(String)"),
        Column("Minute", "DateTime('UTC')"),
        Column("Type", "String"),
        Column("Message", "String"),
        Column("Count", "SimpleAggregateFunction(sum, UInt64)"),
        Column("FirstSeen", "SimpleAggregateFunction(min, DateTime64(9, 'UTC'))"),
    ),
    engine="AggregatingMergeTree",
    partition_by="toYYYYMM(Minute)",
    order_by="(ServiceName, Minute, Type, Message)",
    settings=_ROLLUP_SETTINGS,
    sharding_key="rand64()",
)

_ERRORS_SELECT = f"""SELECT
    ServiceName,
    toStartOfMinute(Timestamp) AS Minute,
    {ERROR_TYPE} AS Type,
    {_formattable(ERROR_SHAPE)} AS Message,
    count() AS Count,
    min(Timestamp) AS FirstSeen
FROM {{source}}
WHERE {IS_REQUEST} AND {IS_ERROR}
GROUP BY ServiceName, Minute, Type, Message"""


_span_minutes = CreateTable(
    table=SPAN_MINUTES,
    columns=(
        Column("Minute", "DateTime('UTC')"),
        Column("ServiceName", "LowCardinality(String)"),
        Column("Spans", "SimpleAggregateFunction(sum, UInt64)"),
    ),
    engine="AggregatingMergeTree",
    partition_by="toYYYYMM(Minute)",
    order_by="(Minute, ServiceName)",
    settings=_ROLLUP_SETTINGS,
    sharding_key="rand64()",
)

_SPAN_MINUTES_SELECT = """SELECT toStartOfMinute(Timestamp) AS Minute, ServiceName, count() AS Spans
FROM {source}
GROUP BY Minute, ServiceName"""

_call_spans = CreateTable(
    table=CALL_SPANS,
    columns=(
        Column("Timestamp", "DateTime64(9, 'UTC')", codec="Delta, ZSTD(1)"),
        # cityHash64(TraceId, SpanId) of a client (or producer) span; cityHash64(TraceId, ParentSpanId) of the
        # server (or consumer) span that answers it.
        Column("Call", "UInt64"),
        Column("Served", "UInt8"),
        Column("ServiceName", "LowCardinality(String)"),
        # Whom a client span says it called (telemetry_sql.PEER_NAME); '' on the served side.
        Column("Peer", "LowCardinality(String)"),
        Column("Failed", "UInt8"),
        Column("Duration", "UInt64"),
    ),
    partition_by="toDate(Timestamp)",
    order_by="Timestamp",
    sharding_key="rand64()",
)

_CALL_SPANS_SELECT = f"""SELECT
    Timestamp,
    if({IS_CLIENT_CALL}, cityHash64(TraceId, SpanId), cityHash64(TraceId, ParentSpanId)) AS Call,
    toUInt8(NOT ({IS_CLIENT_CALL})) AS Served,
    ServiceName,
    if({IS_CLIENT_CALL}, {PEER_NAME}, '') AS Peer,
    toUInt8({IS_ERROR}) AS Failed,
    Duration
FROM {{source}}
WHERE ServiceName != '' AND TraceId != ''
  AND ({IS_CLIENT_CALL} OR ({IS_REQUEST} AND ParentSpanId != ''))"""

# One run of the edge cache per computation of a minute; readers take each minute's latest run, and merges drop
# the rows an older run left for the same edge. `Answered`: 1 for calls a server span answered, 0 for calls to
# an uninstrumented callee (the peer's name).
_edge_minutes = CreateTable(
    table=EDGE_MINUTES,
    columns=(
        Column("Minute", "DateTime('UTC')"),
        Column("Source", "LowCardinality(String)"),
        Column("Destination", "LowCardinality(String)"),
        Column("Answered", "UInt8"),
        Column("Requests", "UInt64"),
        Column("Errors", "UInt64"),
        Column("Duration", EDGE_DURATION_STATE, codec=None),
        Column("Run", "UInt64"),
    ),
    engine="ReplacingMergeTree(Run)",
    partition_by="toYYYYMM(Minute)",
    order_by="(Minute, Source, Destination, Answered)",
    settings=_ROLLUP_SETTINGS,
    # The correlator writes through the Distributed table; every run of a minute meets the others on one shard.
    sharding_key="cityHash64(Minute)",
)

_edge_minute_runs = CreateTable(
    table=EDGE_MINUTE_RUNS,
    columns=(
        Column("Minute", "DateTime('UTC')"),
        # span_minutes' count over the minute and the slack either side when the run began.
        Column("Spans", "UInt64"),
        Column("Run", "UInt64"),
    ),
    engine="ReplacingMergeTree(Run)",
    partition_by="toYYYYMM(Minute)",
    order_by="Minute",
    settings=_ROLLUP_SETTINGS,
    sharding_key="cityHash64(Minute)",
)


def _view(table: str, select: str) -> CreateMaterializedView:
    return CreateMaterializedView(view=f"{table}_mv", to_table=table, source_table=TRACES, select=select)


ROLLUP_TABLES = Migration(
    version=4,
    name="per-minute RED, error types, span counts, call spans and a topology cache",
    operations=(
        _service_minutes,
        _service_hours,
        _red_minutes,
        _error_minutes,
        _span_minutes,
        _call_spans,
        _edge_minutes,
        _edge_minute_runs,
        # Copy first, then attach the views: a store migrates before it takes inserts (serve migrates at start).
        InsertSelect(SERVICE_MINUTES, TRACES, _SERVICE_SELECT),
        InsertSelect(SERVICE_HOURS, SERVICE_MINUTES, _HOURS_SELECT),
        InsertSelect(SERVICE_RED_MINUTES, TRACES, _RED_SELECT),
        InsertSelect(SERVICE_ERROR_MINUTES, TRACES, _ERRORS_SELECT),
        InsertSelect(SPAN_MINUTES, TRACES, _SPAN_MINUTES_SELECT),
        InsertSelect(CALL_SPANS, TRACES, _CALL_SPANS_SELECT),
        _view(SERVICE_MINUTES, _SERVICE_SELECT),
        CreateMaterializedView(
            view=f"{SERVICE_HOURS}_mv", to_table=SERVICE_HOURS, source_table=SERVICE_MINUTES, select=_HOURS_SELECT
        ),
        _view(SERVICE_RED_MINUTES, _RED_SELECT),
        _view(SERVICE_ERROR_MINUTES, _ERRORS_SELECT),
        _view(SPAN_MINUTES, _SPAN_MINUTES_SELECT),
        _view(CALL_SPANS, _CALL_SPANS_SELECT),
    ),
)
