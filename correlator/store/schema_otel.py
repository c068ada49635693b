"""The otel_* tables exactly as the Collector's clickhouseexporter creates them (SCHEMA.md)."""

from __future__ import annotations

from correlator.store.ddl import MAP, Column, CreateMaterializedView, CreateTable, Index, Migration

TRACES = "otel_traces"
TRACE_ID_TS = "otel_traces_trace_id_ts"
TRACE_ID_TS_MV = "otel_traces_trace_id_ts_mv"
LOGS = "otel_logs"
METRIC_TABLES = {
    "gauge": "otel_metrics_gauge",
    "sum": "otel_metrics_sum",
    "histogram": "otel_metrics_histogram",
    "exponential_histogram": "otel_metrics_exponential_histogram",
    "summary": "otel_metrics_summary",
}

# Cluster mode (docs/cluster.md): a trace stays on one shard, so a trace lookup reads one shard's rows and the
# trace-id view (fed on each shard by its local spans) agrees with the key. Logs without a trace spread at random
# instead of piling onto the shard of the empty id. A metric series stays on one shard.
TRACE_SHARDING = "cityHash64(TraceId)"
LOG_SHARDING = "if(TraceId = '', rand64(), cityHash64(TraceId))"
METRIC_SHARDING = "cityHash64(ServiceName, MetricName, Attributes)"


def _map_indexes(*pairs: tuple[str, str], kind: str = "bloom_filter(0.01)") -> tuple[Index, ...]:
    indexes: list[Index] = []
    for prefix, column in pairs:
        indexes.append(Index(f"idx_{prefix}_key", f"mapKeys({column})", kind))
        indexes.append(Index(f"idx_{prefix}_value", f"mapValues({column})", kind))
    return tuple(indexes)


_traces = CreateTable(
    table=TRACES,
    columns=(
        Column("Timestamp", "DateTime64(9)", "Delta, ZSTD(1)"),
        Column("TraceId", "String"),
        Column("SpanId", "String"),
        Column("ParentSpanId", "String"),
        Column("TraceState", "String"),
        Column("SpanName", "LowCardinality(String)"),
        Column("SpanKind", "LowCardinality(String)"),
        Column("ServiceName", "LowCardinality(String)"),
        Column("ResourceAttributes", MAP),
        Column("ScopeName", "String"),
        Column("ScopeVersion", "String"),
        Column("SpanAttributes", MAP),
        Column("Duration", "UInt64"),
        Column("StatusCode", "LowCardinality(String)"),
        Column("StatusMessage", "String"),
        Column("Events", f"Nested (Timestamp DateTime64(9), Name LowCardinality(String), Attributes {MAP})"),
        Column("Links", f"Nested (TraceId String, SpanId String, TraceState String, Attributes {MAP})"),
    ),
    indexes=(
        Index("idx_trace_id", "TraceId", "bloom_filter(0.001)"),
        *_map_indexes(("res_attr", "ResourceAttributes"), ("span_attr", "SpanAttributes")),
        Index("idx_duration", "Duration", "minmax"),
    ),
    partition_by="toDate(Timestamp)",
    order_by="(ServiceName, SpanName, toDateTime(Timestamp))",
    sharding_key=TRACE_SHARDING,
)

_trace_id_ts = CreateTable(
    table=TRACE_ID_TS,
    columns=(
        Column("TraceId", "String"),
        Column("Start", "DateTime"),
        Column("End", "DateTime", "Delta, ZSTD(1)"),
    ),
    indexes=(Index("idx_trace_id", "TraceId", "bloom_filter(0.01)"),),
    partition_by="toDate(Start)",
    order_by="(TraceId, Start)",
    sharding_key=TRACE_SHARDING,
)

_trace_id_ts_mv = CreateMaterializedView(
    view=TRACE_ID_TS_MV,
    to_table=TRACE_ID_TS,
    source_table=TRACES,
    select=(
        "SELECT TraceId, min(Timestamp) AS Start, max(Timestamp) AS End\n"
        "FROM {source}\nWHERE TraceId != ''\nGROUP BY TraceId"
    ),
)

# Resource attributes the exporter materializes into their own columns for cheap filtering.
MATERIALIZED_LOG_KEYS = (
    "k8s.cluster.name",
    "k8s.container.name",
    "k8s.deployment.name",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.pod.name",
    "k8s.pod.uid",
    "deployment.environment.name",
)


def _materialized(key: str) -> Column:
    name = "__otel_materialized_" + key
    # The key is a fixed constant of this module, never outside input.
    return Column(name, "LowCardinality(String)", expression=f"MATERIALIZED ResourceAttributes['{key}']")


_logs = CreateTable(
    table=LOGS,
    columns=(
        Column("Timestamp", "DateTime64(9)", "Delta(8), ZSTD(1)"),
        Column("TraceId", "String"),
        Column("SpanId", "String"),
        Column("TraceFlags", "UInt8", None),
        Column("SeverityText", "LowCardinality(String)"),
        Column("SeverityNumber", "UInt8", None),
        Column("ServiceName", "LowCardinality(String)"),
        Column("Body", "String"),
        Column("ResourceSchemaUrl", "LowCardinality(String)"),
        Column("ResourceAttributes", MAP),
        Column("ScopeSchemaUrl", "LowCardinality(String)"),
        Column("ScopeName", "String"),
        Column("ScopeVersion", "LowCardinality(String)"),
        Column("ScopeAttributes", MAP),
        Column("LogAttributes", MAP),
        Column("EventName", "String"),
        *(_materialized(key) for key in MATERIALIZED_LOG_KEYS),
    ),
    # ClickHouse >= 26.2 (chDB 4.4 runs 26.9): the exporter creates text indexes.
    indexes=(
        Index("idx_trace_id", "TraceId", "text(tokenizer = 'array')"),
        *_map_indexes(
            ("res_attr", "ResourceAttributes"),
            ("scope_attr", "ScopeAttributes"),
            ("log_attr", "LogAttributes"),
            kind="text(tokenizer = 'array')",
        ),
        Index("idx_lower_body", "lower(Body)", "text(tokenizer = 'splitByNonAlpha')"),
    ),
    partition_by="toDate(Timestamp)",
    order_by="(toStartOfFiveMinutes(Timestamp), ServiceName, Timestamp)",
    sharding_key=LOG_SHARDING,
)

_METRIC_HEAD = (
    Column("ResourceAttributes", MAP),
    Column("ResourceSchemaUrl", "String"),
    Column("ScopeName", "String"),
    Column("ScopeVersion", "String"),
    Column("ScopeAttributes", MAP),
    Column("ScopeDroppedAttrCount", "UInt32"),
    Column("ScopeSchemaUrl", "String"),
    Column("ServiceName", "LowCardinality(String)"),
    Column("MetricName", "LowCardinality(String)"),
    Column("MetricDescription", "String"),
    Column("MetricUnit", "String"),
    Column("Attributes", MAP),
    Column("StartTimeUnix", "DateTime", "Delta, ZSTD(1)"),
    Column("TimeUnix", "DateTime", "Delta, ZSTD(1)"),
)
_EXEMPLARS = Column(
    "Exemplars",
    f"Nested (FilteredAttributes {MAP}, TimeUnix DateTime, Value Float64, SpanId String, TraceId String)",
)
_METRIC_TAILS: dict[str, tuple[Column, ...]] = {
    "gauge": (Column("Value", "Float64"), Column("Flags", "UInt32"), _EXEMPLARS),
    "sum": (
        Column("Value", "Float64"),
        Column("Flags", "UInt32"),
        _EXEMPLARS,
        Column("AggregationTemporality", "Int32"),
        Column("IsMonotonic", "Boolean", "Delta, ZSTD(1)"),
    ),
    "histogram": (
        Column("Count", "UInt64", "Delta, ZSTD(1)"),
        Column("Sum", "Float64"),
        Column("BucketCounts", "Array(UInt64)"),
        Column("ExplicitBounds", "Array(Float64)"),
        _EXEMPLARS,
        Column("Flags", "UInt32"),
        Column("Min", "Float64"),
        Column("Max", "Float64"),
        Column("AggregationTemporality", "Int32"),
    ),
    "exponential_histogram": (
        Column("Count", "UInt64", "Delta, ZSTD(1)"),
        Column("Sum", "Float64"),
        Column("Scale", "Int32"),
        Column("ZeroCount", "UInt64"),
        Column("PositiveOffset", "Int32"),
        Column("PositiveBucketCounts", "Array(UInt64)"),
        Column("NegativeOffset", "Int32"),
        Column("NegativeBucketCounts", "Array(UInt64)"),
        _EXEMPLARS,
        Column("Flags", "UInt32"),
        Column("Min", "Float64"),
        Column("Max", "Float64"),
        Column("AggregationTemporality", "Int32"),
    ),
    "summary": (
        Column("Count", "UInt64", "Delta, ZSTD(1)"),
        Column("Sum", "Float64"),
        Column("ValueAtQuantiles", "Nested (Quantile Float64, Value Float64)"),
        Column("Flags", "UInt32"),
    ),
}


def _metric_table(kind: str) -> CreateTable:
    return CreateTable(
        table=METRIC_TABLES[kind],
        columns=_METRIC_HEAD + _METRIC_TAILS[kind],
        indexes=(
            *_map_indexes(
                ("res_attr", "ResourceAttributes"), ("scope_attr", "ScopeAttributes"), ("attr", "Attributes")
            ),
            Index("idx_time_minmax", "TimeUnix", "minmax"),
        ),
        partition_by="toDate(TimeUnix)",
        order_by="(ServiceName, MetricName, toStartOfHour(TimeUnix), cityHash64(Attributes), TimeUnix)",
        sharding_key=METRIC_SHARDING,
    )


OTEL_TABLES = Migration(
    version=1,
    name="otel tables as the clickhouseexporter creates them",
    operations=(
        _traces,
        _trace_id_ts,
        _trace_id_ts_mv,
        _logs,
        *(_metric_table(kind) for kind in METRIC_TABLES),
    ),
)
