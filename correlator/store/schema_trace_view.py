"""Each trace's spans in one place, for the trace view: a copy of what it reads of otel_traces, ordered by TraceId.

The exporter's otel_traces is sorted by (ServiceName, SpanName, time), so one trace's spans lie in as many
granules as it has (service, span name) pairs, each found through the TraceId bloom filters of every granule of
its second and decompressed whole, maps included: about 55 ms for ten spans on a 10 M-span store, and the trace
view's p99 over 100 ms with it. Here a trace is a few adjacent rows found by the primary key (about 16 ms).

What it costs (docs/benchmarks.md, "Trace view"): a second sort and part write of every span insert, without the
columns the view does not show (scope, trace state, links) and with the resource cut down to what says which
deploy produced the span (DEPLOY_KEYS), so about two thirds of otel_traces' write, and its merges.

Migration 5 copies what otel_traces already holds (one node only, like migration 4: docs/cluster.md).
"""

from __future__ import annotations

from correlator.store.ddl import MAP, Column, CreateMaterializedView, CreateTable, InsertSelect, Migration
from correlator.store.schema_otel import TRACE_SHARDING, TRACES

SPANS_BY_TRACE = "spans_by_trace"

DEPLOY_KEYS = ("service.version", "deployment.id", "deployment.environment.name", "deployment.environment")
"""The resource attributes that say which deploy produced a span: all of the resource the trace view reads."""

_spans_by_trace = CreateTable(
    table=SPANS_BY_TRACE,
    columns=(
        Column("TraceId", "String"),
        Column("Timestamp", "DateTime64(9)", "Delta, ZSTD(1)"),
        Column("SpanId", "String"),
        Column("ParentSpanId", "String"),
        Column("ServiceName", "LowCardinality(String)"),
        Column("SpanName", "LowCardinality(String)"),
        Column("SpanKind", "LowCardinality(String)"),
        Column("Duration", "UInt64"),
        Column("StatusCode", "LowCardinality(String)"),
        Column("StatusMessage", "String"),
        Column("SpanAttributes", MAP),
        Column("Events", f"Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes {MAP})"),
        Column("DeployAttributes", MAP),
    ),
    partition_by="toDate(Timestamp)",
    order_by="(TraceId, Timestamp)",
    # A trace is a handful of rows: smaller granules decompress less around them (16 against 18 ms a read).
    settings="index_granularity = 1024",
    # Like otel_traces: the view writes on the node of the spans, which the trace id put there.
    sharding_key=TRACE_SHARDING,
)

_KEYS = "[" + ", ".join("'" + key + "'" for key in DEPLOY_KEYS) + "]"

_SELECT = (
    "SELECT TraceId, Timestamp, SpanId, ParentSpanId, ServiceName, SpanName, SpanKind, Duration, StatusCode,\n"
    "    StatusMessage, SpanAttributes, `Events.Timestamp`, `Events.Name`, `Events.Attributes`,\n"
    "    mapFilter((k, v) -> has(" + _KEYS + ", k), ResourceAttributes) AS DeployAttributes\n"
    "FROM {source}\nWHERE TraceId != ''"
)

TRACE_VIEW_TABLES = Migration(
    version=5,
    name="each trace's spans ordered by trace id, for the trace view",
    operations=(
        _spans_by_trace,
        # Copy first, then attach the view: a store migrates before it takes inserts (serve migrates at start).
        InsertSelect(SPANS_BY_TRACE, TRACES, _SELECT),
        CreateMaterializedView(
            view=f"{SPANS_BY_TRACE}_mv", to_table=SPANS_BY_TRACE, source_table=TRACES, select=_SELECT
        ),
    ),
)
