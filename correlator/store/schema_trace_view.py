"""Each trace's spans and exemplars in one place, for the trace view: copies of what it reads of otel_traces and
of the metric tables' exemplars, ordered by TraceId.

The exporter's otel_traces is sorted by (ServiceName, SpanName, time), so one trace's spans lie in as many
granules as it has (service, span name) pairs, each found through the TraceId bloom filters of every granule of
its second and decompressed whole, maps included: about 55 ms for ten spans on a 10 M-span store, and the trace
view's p99 over 100 ms with it. Here a trace is a few adjacent rows found by the primary key (about 16 ms).

What it costs (docs/benchmarks.md, "Trace view"): a second sort and part write of every span insert, without the
columns the view does not show (scope, trace state, links) and with the resource cut down to what says which
deploy produced the span (DEPLOY_KEYS), so about two thirds of otel_traces' write, and its merges.

The exemplars likewise: a metric table is sorted by series, so the points of a trace's services in its time window
are every series' granules of that window, whose exemplar arrays were all decompressed to find the trace (36 ms
a view on bench.trace_view's store, where every series carries exemplars). exemplars_by_trace holds one row per
exemplar, ordered by the trace id it names.

Migrations 5 and 6 copy what the source tables already hold (one node only, like migration 4: docs/cluster.md).
"""

from __future__ import annotations

from correlator.store.ddl import MAP, Column, CreateMaterializedView, CreateTable, InsertSelect, Migration
from correlator.store.schema_otel import METRIC_TABLES, TRACE_SHARDING, TRACES

SPANS_BY_TRACE = "spans_by_trace"
EXEMPLARS_BY_TRACE = "exemplars_by_trace"
EXEMPLAR_SOURCES = tuple(METRIC_TABLES[kind] for kind in ("sum", "gauge", "histogram", "exponential_histogram"))
"""The metric tables with exemplars (summaries have none)."""

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

_exemplars_by_trace = CreateTable(
    table=EXEMPLARS_BY_TRACE,
    columns=(
        Column("TraceId", "String"),
        # The point's time, which bounds what the view reads (trace_queries.EXEMPLAR_BEFORE and _AFTER).
        Column("TimeUnix", "DateTime", "Delta, ZSTD(1)"),
        Column("ServiceName", "LowCardinality(String)"),
        Column("MetricName", "LowCardinality(String)"),
        Column("ExemplarTimeUnix", "DateTime"),
        Column("Value", "Float64"),
        Column("SpanId", "String"),
    ),
    partition_by="toDate(TimeUnix)",
    order_by="(TraceId, TimeUnix)",
    settings="index_granularity = 1024",
    # Written by the views on the node of the metric points, which the series (not the trace) put there: like
    # service_version_minutes, a key that never lets a query skip a shard (docs/cluster.md).
    sharding_key="rand64()",
)

_EXEMPLARS_SELECT = (
    "SELECT `Exemplars.TraceId` AS TraceId, TimeUnix, ServiceName, MetricName,\n"
    "    `Exemplars.TimeUnix` AS ExemplarTimeUnix, `Exemplars.Value` AS Value, `Exemplars.SpanId` AS SpanId\n"
    "FROM {source}\nARRAY JOIN Exemplars\n"
    # Exemplars recorded outside a sampled span carry the zero id (SCHEMA.md): no trace to find them by.
    "WHERE `Exemplars.TraceId` != '' AND `Exemplars.TraceId` != repeat('0', 32)"
)

TRACE_VIEW_EXEMPLARS = Migration(
    version=6,
    name="each trace's exemplars ordered by trace id, for the trace view",
    operations=(
        _exemplars_by_trace,
        # One statement for the four sources: a copy runs only into an empty table (ddl.insert_guard).
        InsertSelect(EXEMPLARS_BY_TRACE, EXEMPLAR_SOURCES[0], _EXEMPLARS_SELECT, more_sources=EXEMPLAR_SOURCES[1:]),
        *(
            CreateMaterializedView(
                view=f"{EXEMPLARS_BY_TRACE}_{source}_mv",
                to_table=EXEMPLARS_BY_TRACE,
                source_table=source,
                select=_EXEMPLARS_SELECT,
            )
            for source in EXEMPLAR_SOURCES
        ),
    ),
)
