"""Per-minute pre-aggregations of otel_traces that the service list and the incident view read instead of spans.

Kept by materialized views, so they fill on every insert, whoever writes (the correlator or collectors going
straight to ClickHouse). Only what the read benchmarks asked for (docs/benchmarks.md, "Read queries"):
- `service_red_minutes`: requests, failed requests and a duration quantile state per (service, span name,
  minute) of server and consumer spans; answers RED, the 24-hour p95 baseline, top endpoints and an incident's
  per-minute series from about 1 row per 50 requests.
- `service_error_minutes`: failed requests per (service, minute, error type, message shape), for top errors.
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
from correlator.store.telemetry_sql import ERROR_SHAPE, ERROR_TYPE, IS_ERROR, IS_REQUEST

SERVICE_RED_MINUTES = "service_red_minutes"
SERVICE_ERROR_MINUTES = "service_error_minutes"

DURATION_STATE = "AggregateFunction(quantiles(0.5, 0.95, 0.99), UInt64)"
"""The duration (ns) column of the RED minutes; merge with quantilesMerge(0.5, 0.95, 0.99)."""

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


def _view(table: str, select: str) -> CreateMaterializedView:
    return CreateMaterializedView(view=f"{table}_mv", to_table=table, source_table=TRACES, select=select)


ROLLUP_TABLES = Migration(
    version=4,
    name="per-minute RED and error types of services",
    operations=(
        _red_minutes,
        _error_minutes,
        # Copy first, then attach the views: a store migrates before it takes inserts (serve migrates at start).
        InsertSelect(SERVICE_RED_MINUTES, TRACES, _RED_SELECT),
        InsertSelect(SERVICE_ERROR_MINUTES, TRACES, _ERRORS_SELECT),
        _view(SERVICE_RED_MINUTES, _RED_SELECT),
        _view(SERVICE_ERROR_MINUTES, _ERRORS_SELECT),
    ),
)
